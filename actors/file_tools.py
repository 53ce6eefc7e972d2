"""Editing part of a file and searching files: two tools that save a model from
rewriting a whole file to change one line, and from reading every file to find one.

Both go through the agent's ``RoleView``: a refusal (scope, link, a path with ``..``)
is the bus's, told to the model as such. Every argument is a model's and is checked
here: an empty or ambiguous snippet, a file that is not UTF-8, a huge pattern.

``search_files`` reads only what the role may read (its workspace map), skips the
model transcripts (``logs/llm/**``) unless asked for that folder, binary files and
files over ``SEARCH_FILE_BYTES``, and stops at ``SEARCH_TOTAL_BYTES`` scanned or
``max_matches`` found. A fixed string is matched in this process (linear). A regular
expression is matched in a child interpreter killed after ``REGEX_TIMEOUT_S``: Python's
``re`` backtracks, ``(a+)+$`` over 30 a's and a b takes minutes, and no input cap
prevents that (measured: a child costs ~25 ms to start, paid only by regex searches).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

from bus import BusRefusal, RoleView

from .workspace import TRANSCRIPTS

__all__ = ["edit_file", "search_files", "REGEX_TIMEOUT_S", "SEARCH_FILE_BYTES", "SEARCH_TOTAL_BYTES"]

SEARCH_FILE_BYTES = 8 * 1024 * 1024  # bigger files (a task's data) are skipped: read them by line range
SEARCH_TOTAL_BYTES = 64 * 1024 * 1024
REGEX_TIMEOUT_S = 5.0
MAX_PATTERN_CHARS = 500
_LINE_CHARS = 200  # a matching line is shown cut to this
_CONTEXT_LINES = 2


class ToolInputError(ValueError):
    """The model's arguments cannot be used; the message says what to change."""


# -- edit_file ------------------------------------------------------------------------

def _text_of(view: RoleView, path: str) -> str:
    data = view.read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ToolInputError(f"{path} is not UTF-8 text (byte {e.start} is {data[e.start:e.start + 1]!r}): edit_file "
                             "changes text files only; write the whole file with write_file") from None


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _around(lines: list[str], line: int) -> str:
    lo, hi = max(line - 1 - _CONTEXT_LINES, 0), min(line + _CONTEXT_LINES, len(lines))
    return "\n".join(f"  {n:>5}| {lines[n - 1][:_LINE_CHARS]}" for n in range(lo + 1, hi + 1))


def edit_file(view: RoleView, path: str, old: str, new: str, summary: str = "") -> dict:
    """Replace the one occurrence of ``old`` in text file ``path`` with ``new`` and
    write the result as a new version. Returns the bus's row. Raises ``ToolInputError``
    (no occurrence, several, an empty ``old``, no change, not UTF-8), ``BusRefusal``."""
    if not old:
        raise ToolInputError("`old` is empty: give the exact text to replace, with a line or two around it so that "
                             "it occurs once")
    if old == new:
        raise ToolInputError("`old` and `new` are the same: nothing to change")
    text = _text_of(view, path)
    starts, at = [], text.find(old)
    while at != -1 and len(starts) < 100:
        starts.append(at)
        at = text.find(old, at + 1)
    lines = text.split("\n")
    if not starts:
        raise ToolInputError(f"`old` occurs 0 times in {path}{_near_misses(old, lines)}; read the file "
                             "(read_file with a line range) and copy the text exactly, spaces and indentation included")
    if len(starts) > 1:
        shown = "\n".join(f"at line {_line_of(text, s)}:\n{_around(lines, _line_of(text, s))}" for s in starts[:3])
        more = f" (and {len(starts) - 3} more)" if len(starts) > 3 else ""
        raise ToolInputError(f"`old` occurs {'100 or more' if len(starts) == 100 else len(starts)} times in {path}"
                             f"{more}; add lines around it so that it occurs once:\n{shown}")
    changed = text[: starts[0]] + new + text[starts[0] + len(old):]
    line = _line_of(text, starts[0])
    return view.write(path, changed, summary=str(summary or f"edited at line {line}")[:200]) | {"line": line}


def _near_misses(old: str, lines: list[str]) -> str:
    """Where the first line of ``old`` occurs when spaces are ignored (a model's usual
    slip: indentation, trailing spaces)."""
    first = next((s.strip() for s in old.split("\n") if s.strip()), "")
    if not first:
        return ""
    near = [n for n, line in enumerate(lines, 1) if first in line.strip()][:3]
    if not near:
        return ""
    return "; its first line, spaces aside, is at line " + ", ".join(map(str, near)) + ":\n" + _around(lines, near[0])


# -- search_files ---------------------------------------------------------------------

# The child's whole program: reads {pattern, flags, files: [[path, text]], max} on stdin,
# writes [[path, line, text]] on stdout. Standard library only (-I -S: no site, no env).
_MATCHER = r"""
import json, re, sys
job = json.load(sys.stdin)
rx, found = re.compile(job["pattern"], job["flags"]), []
for path, text in job["files"]:
    for n, line in enumerate(text.split("\n"), 1):
        if rx.search(line):
            found.append([path, n, line[:%d]])
            if len(found) >= job["max"]:
                json.dump(found, sys.stdout); sys.exit(0)
json.dump(found, sys.stdout)
""" % _LINE_CHARS


def _regex_matches(pattern: str, flags: int, files: list[tuple[str, str]], max_matches: int) -> list:
    job = json.dumps({"pattern": pattern, "flags": flags, "files": files, "max": max_matches})
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", _MATCHER], input=job, capture_output=True, text=True,
                              timeout=REGEX_TIMEOUT_S)
    except subprocess.TimeoutExpired:  # run() kills the child
        size = sum(len(t) for _, t in files)
        raise ToolInputError(f"the regular expression ran past {REGEX_TIMEOUT_S:g} s over {size} characters and was "
                             "stopped (nested repeats such as (a+)+ backtrack without end): use a simpler pattern, "
                             "a fixed string (regex false), or a narrower folder") from None
    if done.returncode != 0:
        raise ToolInputError(f"the regular expression failed: {done.stderr.strip().splitlines()[-1][:300]}")
    return json.loads(done.stdout)


def search_files(view: RoleView, pattern: str, regex: bool = False, folder: str = "", ignore_case: bool = False,
                 max_matches: int = 50, max_chars: int = 20_000) -> str:
    """``path:line: text`` for each line that holds ``pattern`` in the files the role
    may read under ``folder``, then a line saying what was skipped or cut. Raises
    ``ToolInputError`` (an empty or huge pattern, a bad regex, one that runs too long),
    ``BusRefusal`` (a folder with a link in it)."""
    if not pattern:
        raise ToolInputError("`pattern` is empty: give the text (or regular expression) to look for")
    if len(pattern) > MAX_PATTERN_CHARS or "\n" in pattern:
        raise ToolInputError(f"`pattern` must be one line of at most {MAX_PATTERN_CHARS} characters (lines are "
                             "searched one at a time)")
    if not 1 <= max_matches <= 200:
        raise ToolInputError("`max_matches` must be between 1 and 200")
    flags = re.IGNORECASE if ignore_case else 0
    if regex:
        try:
            re.compile(pattern, flags)
        except (re.error, RecursionError, OverflowError) as e:
            raise ToolInputError(f"`pattern` is not a valid regular expression: {e}") from None
    folder = str(folder).strip("/")
    paths = view.list(folder)
    if not (folder + "/").startswith(TRANSCRIPTS):  # model transcripts: thousands of files, never what is looked for
        paths = [p for p in paths if not p.startswith(TRANSCRIPTS)]
    sizes = dict(zip(*(view.workspace_map().column(c).to_pylist() for c in ("path", "size"))))
    files, skipped, scanned = [], {"too big": 0, "binary": 0, "unreadable": 0, "past the scan limit": 0}, 0
    for path in paths:
        size = sizes.get(path) or 0
        if size > SEARCH_FILE_BYTES:
            skipped["too big"] += 1
            continue
        if scanned + size > SEARCH_TOTAL_BYTES:
            skipped["past the scan limit"] += 1
            continue
        try:
            data = view.read_bytes(path)
        except BusRefusal:  # gone or changed into something else since the map was read
            skipped["unreadable"] += 1
            continue
        scanned += len(data)
        if b"\0" in data[:8192]:
            skipped["binary"] += 1
            continue
        files.append((path, data.decode("utf-8", errors="replace")))
    if regex:
        found = _regex_matches(pattern, flags, files, max_matches)
    else:
        found, needle = [], pattern.casefold() if ignore_case else pattern
        for path, text in files:
            for n, line in enumerate(text.split("\n"), 1):
                if needle in (line.casefold() if ignore_case else line):
                    found.append([path, n, line[:_LINE_CHARS]])
            if len(found) >= max_matches:
                break
        found = found[:max_matches]
    lines = [f"{p}:{n}: {t}" for p, n, t in found]
    notes = [f"{n} {why}" for why, n in skipped.items() if n]
    tail = [f"(searched {len(files)} files under '{folder or '/'}'" + (f"; skipped: {', '.join(notes)}" if notes else "")
            + (f"; stopped at {max_matches} matches" if len(found) >= max_matches else "") + ")"]
    out = "\n".join(lines or [f"no line holds {pattern!r}"])
    if len(out) > max_chars:
        out = out[:max_chars] + "\n[... cut: narrow the folder or the pattern]"
    return out + "\n" + tail[0]
