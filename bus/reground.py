"""What an agent re-reads instead of remembering: the workspace map and recent changes.

Both are computed from the event index with vectorized Arrow operations (no Python
loop over files), so a 10,000-file project re-grounds in milliseconds
(``python -m benchmarks.perf.bus_bench`` measures it).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .globs import globs_to_regex
from .schema import KIND_APPEND, KIND_RECOVERED, KIND_WRITE
from .scopes import Scope

VERSION_KINDS = (KIND_WRITE, KIND_APPEND, KIND_RECOVERED)
MAP_COLUMNS = ["path", "version", "size", "role", "instance", "time", "summary", "hash"]


def _readable(table: pa.Table, scope: Scope) -> pa.Array:
    regex = globs_to_regex(tuple(scope.read) + tuple(scope.write))
    return pc.fill_null(pc.match_substring_regex(table.column("path"), regex), False)


def latest_files(events: pa.Table) -> pa.Table:
    """The latest version of every file: one row per path, sorted by path.

    ``size`` is the file's size at that version (for an appended log: the end of the
    last record, not the record's own size).
    """
    files = events.filter(pc.is_in(events.column("kind"), pa.array(VERSION_KINDS)))
    # 'recovered' rows that only preserved old content (no version) are history, not state.
    files = files.filter(pc.field("version").is_valid())
    if files.num_rows == 0:
        return files.select(MAP_COLUMNS)
    files = files.sort_by([("path", "ascending"), ("seq", "ascending")])
    paths = files.column("path").to_numpy(zero_copy_only=False)
    last = np.ones(len(paths), dtype=bool)
    last[:-1] = paths[1:] != paths[:-1]
    latest = files.filter(pa.array(last))
    is_append = pc.equal(latest.column("kind"), KIND_APPEND)
    size = pc.if_else(is_append, pc.add(latest.column("offset"), latest.column("size")), latest.column("size"))
    latest = latest.set_column(latest.schema.get_field_index("size"), "size", size)
    return latest.select(MAP_COLUMNS)


def workspace_map(events: pa.Table, scope: Scope) -> pa.Table:
    latest = latest_files(events)
    return latest.filter(_readable(latest, scope))


def changes(events: pa.Table, scope: Scope) -> pa.Table:
    """Events a role may see: those on its readable paths, and those with no path."""
    visible = pc.or_(pc.is_null(events.column("path")), _readable(events, scope))
    return events.filter(visible)


def versions(events: pa.Table, path: str) -> pa.Table:
    rows = events.filter((pc.field("path") == path) & pc.field("version").is_valid())
    rows = rows.filter(pc.is_in(rows.column("kind"), pa.array(VERSION_KINDS)))
    return rows.select(["version", "kind", "hash", "size", "offset", "role", "instance", "time", "summary"])


def _human_size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def render_map(table: pa.Table, limit: int = 400) -> str:
    """The workspace map as compact text for a prompt (one line per file)."""
    lines = []
    for row in table.slice(0, limit).to_pylist():
        when = row["time"].astimezone(dt.timezone.utc).strftime("%m-%d %H:%M") if row["time"] else "-"
        lines.append(
            f"{row['path']}  v{row['version']}  {_human_size(row['size'])}  {row['role']}  {when}  {row['summary'] or ''}".rstrip()
        )
    if table.num_rows > limit:
        lines.append(f"... and {table.num_rows - limit} more files (list a folder to see them)")
    return "\n".join(lines)
