"""The workspace map as a prompt shows it: what matters first, within a size.

``bus.reground.render_map`` lists files sorted by path and cuts after its first rows.
A project grows without bound, and most of what it grows is not what an agent needs
at a glance: after 450 model calls a project holds 450 transcripts
(``logs/llm/<instance>/<seq>.json``, one per call, ``actors.llm.record``), and an
analyst's map was 42,552 characters of them, ending "... and 56 more files", with
task/ and plan/ among the 56 (peer case 18). So, for a prompt:

- transcripts are left out, unless the folder asked for is inside ``logs/llm/``;
- when the rest does not fit in ``max_chars``, task/, plan/ and submission/ are kept
  first, then the files the role may write (its own work), then the others; newest
  first within each group;
- what is kept is listed by path (``render_map``'s lines), and a last line says how
  many files were left out and how to list them;
- a folder of the task holding more than ``COLLAPSE`` files (its images) is one line,
  with its count and size: 300 image names say nothing a model needs and would push
  everything else out;
- ``order="time"`` lists the kept files oldest first (by their latest version) instead
  of by path: a new file then adds a line at the end instead of in the middle, which
  keeps the prompt's prefix (and a server's prefix cache) valid from one decision to
  the next.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from bus.globs import globs_to_regex
from bus.reground import render_map

__all__ = ["TRANSCRIPTS", "prompt_map"]

TRANSCRIPTS = "logs/llm/"
FIRST = ("task/", "plan/", "submission/")
_MAX_ROWS = 400  # rows looked at for one map: more would not fit any prompt
COLLAPSE = 24  # files in one folder above which the folder is one line of the map


def prompt_map(table: pa.Table, max_chars: int, folder: str = "", own: tuple[str, ...] = (),
               order: str = "path") -> str:
    """The map of ``table`` (a ``workspace_map``) for a prompt: at most ``max_chars``
    characters of file lines, then notes on what was left out ('' if nothing to show).

    ``folder``: only the files under it (a ``list_files`` call); ``own``: the globs
    of what the role may write, ranked before the rest; ``order``: the kept files
    listed by ``"path"`` or by ``"time"`` (oldest first)."""
    folder = folder.strip("/")
    if folder:
        table = table.filter(pc.starts_with(table.column("path"), folder + "/"))
    notes = []
    if not (folder + "/").startswith(TRANSCRIPTS):
        transcript = pc.starts_with(table.column("path"), TRANSCRIPTS)
        if n := pc.sum(transcript).as_py() or 0:
            table = table.filter(pc.invert(transcript))
            notes.append(f"({n} LLM transcripts in {TRANSCRIPTS} not shown: list_files('{TRANSCRIPTS[:-1]}') lists them)")
    table, folders = _collapsed(table, folder)
    ranked = _ranked(table, own)
    kept, used = 0, sum(len(line) + 1 for line in folders)
    for i in range(min(ranked.num_rows, _MAX_ROWS)):
        used += len(render_map(ranked.slice(i, 1))) + 1
        if used > max_chars and kept:
            break
        kept += 1
    if ranked.num_rows > kept:
        notes.insert(0, f"... {ranked.num_rows - kept} more files not shown (shown first: task/, plan/, submission/, "
                        "then the newest): list_files(folder) lists a folder")
    keys = [("path", "ascending")] if order == "path" else [("time", "ascending"), ("path", "ascending")]
    lines = render_map(ranked.slice(0, kept).sort_by(keys), limit=kept)
    return "\n".join(folders + ([lines] if lines else []) + notes)


def _collapsed(table: pa.Table, listed: str) -> tuple[pa.Table, list[str]]:
    """The rows of folders with more than ``COLLAPSE`` files (other than the folder being
    listed) taken out, and one line for each such folder."""
    if table.num_rows <= COLLAPSE:
        return table, []
    parents = pc.replace_substring_regex(table.column("path"), r"/[^/]*$", "")
    parents = pc.if_else(pc.starts_with(parents, "task/"), parents, pa.scalar(None, pa.string()))
    counts = pa.table({"parent": parents, "size": table.column("size")}).group_by("parent").aggregate(
        [("parent", "count"), ("size", "sum")])
    big = counts.filter(pc.and_(pc.is_valid(counts.column("parent")),
                                pc.and_(pc.greater(counts.column("parent_count"), COLLAPSE),
                                        pc.not_equal(counts.column("parent"), listed))))
    if big.num_rows == 0:
        return table, []
    lines = [f"{r['parent']}/  ({r['parent_count']} files, {_size(r['size_sum'])}; list_files('{r['parent']}') "
             "lists them)" for r in big.sort_by("parent").to_pylist()]
    return table.filter(pc.invert(pc.fill_null(pc.is_in(parents, big.column("parent")), False))), lines


def _size(n: int | None) -> str:
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _ranked(table: pa.Table, own: tuple[str, ...]) -> pa.Table:
    """Rows in the order they are kept: the first folders, the role's own files, the rest;
    newest first in each."""
    paths = table.column("path")
    first = pc.starts_with(paths, FIRST[0])
    for prefix in FIRST[1:]:
        first = pc.or_(first, pc.starts_with(paths, prefix))
    mine = pc.fill_null(pc.match_substring_regex(paths, globs_to_regex(own)), False)
    tier = pc.if_else(first, 0, pc.if_else(mine, 1, 2))
    return table.append_column("_tier", tier).sort_by(
        [("_tier", "ascending"), ("time", "descending"), ("path", "ascending")]).drop_columns(["_tier"])
