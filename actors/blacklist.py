"""PaperBench's blacklist: sources an agent reproducing a paper may not use.

A paper folder's ``blacklist.txt`` names sites, one a line (in frontier-evals mostly the
authors' GitHub repositories: ``https://github.com/<owner>/<repo>``), ``none`` for none.
PaperBench disqualifies a submission whose agent used one: its monitor reads the agent's
logs for them (``paperbench/monitor``). We do both sides:

- the tools refuse a command naming one (``blocked_source``: the ``run`` tool and
  experiment runs, through the operator's ``RunPolicy.blocked_sources``, which lives in
  the job, never in a file an agent can write);
- ``hits`` reads any text (the recorded model calls) for one; the driver records a hit.

A source matches when its host and path appear in the text, with or without the scheme,
``www.``, a trailing slash or ``.git``, or as an SSH address (``git@host:path``),
case-insensitively (hosts and GitHub's owner and repository names are case-insensitive).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["blocked_source", "hits", "source_pattern"]


def _core(source: str) -> str:
    s = source.strip().lower()
    s = re.sub(r"^[a-z][a-z0-9+.-]*://", "", s)
    s = s.removeprefix("www.").rstrip("/")
    return s.removesuffix(".git").rstrip("/")


def source_pattern(source: str) -> re.Pattern[str] | None:
    """The regular expression that finds ``source`` in a text, or None for an empty line."""
    core = _core(source)
    if not core:
        return None
    # Not preceded by a host character (so `evilgithub.com` is not `github.com`), not
    # followed by more of a name (so `owner/repo2` is not `owner/repo`).
    host, slash, rest = core.partition("/")
    body = re.escape(host) + (r"[/:]" + re.escape(rest) if slash else "")  # git@github.com:owner/repo too
    return re.compile(r"(?<![a-z0-9.-])(?:www\.)?" + body + r"(?:\.git)?(?![a-z0-9_-])", re.IGNORECASE)


def blocked_source(text: str, sources: Iterable[str]) -> str | None:
    """The first blacklisted source ``text`` names, or None."""
    for source in sources:
        pattern = source_pattern(source)
        if pattern is not None and pattern.search(text):
            return source
    return None


def hits(text: str, sources: Iterable[str]) -> list[str]:
    """Every blacklisted source ``text`` names (each once, in the blacklist's order)."""
    return [s for s in sources if (p := source_pattern(s)) is not None and p.search(text)]
