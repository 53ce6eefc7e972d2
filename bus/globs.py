"""Glob patterns for role scopes, compiled to regular expressions.

Semantics (those of ``.gitignore``-style globs, on normalized relative paths):

* ``*`` matches any run of characters except ``/``;
* ``?`` matches one character except ``/``;
* ``**`` matches any run of characters including ``/`` (``code/**`` is everything
  under ``code/``; ``**/*.md`` is every Markdown file at any depth);
* ``[abc]`` is a character class.

One role's globs become one anchored regex, so a scope check is a single match and
the workspace map can filter 10,000 paths in one vectorized Arrow call.
"""

from __future__ import annotations

import re
from functools import lru_cache


def _translate(glob: str) -> str:
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            if glob.startswith("**", i):
                i += 2
                if glob.startswith("/", i):  # '**/' also matches zero folders
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = glob.find("]", i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : j].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@lru_cache(maxsize=256)
def globs_to_regex(globs: tuple[str, ...]) -> str:
    """One anchored regex (RE2-compatible, for Arrow) matching any of ``globs``."""
    if not globs:
        return r"^\b\B$"  # matches nothing
    return "^(?:" + "|".join(_translate(g) for g in globs) + ")$"


@lru_cache(maxsize=256)
def compile_globs(globs: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(globs_to_regex(globs))


def first_match(globs: tuple[str, ...], path: str) -> str | None:
    """The first glob that matches ``path`` (for error messages), or None."""
    for g in globs:
        if compile_globs((g,)).match(path):
            return g
    return None
