"""Queries over the event index, across projects, answered by pyarrow.

The same Parquet files can be queried by DuckDB or pandas as they are, e.g.::

    duckdb -c "SELECT project, max(metrics['score']) FROM
               read_parquet('$AISCI_ROOT/index/segments/*/*.parquet') GROUP BY project"

(journal rows not yet compacted are only seen through this module, or after
``aisci bus compact``.)
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from .bus import Bus
from .reground import latest_files as _latest_files


def events(bus: Bus, project: str, since: int = 0, kinds: list[str] | None = None) -> pa.Table:
    """Events of ``project`` with ``seq > since`` (optionally of some kinds), by seq."""
    table = bus.project(project).events(since)
    if kinds:
        table = table.filter(pc.is_in(table.column("kind"), pa.array(kinds)))
    return table


def latest_files(bus: Bus, project: str) -> pa.Table:
    """The latest version of every file of ``project``."""
    return _latest_files(bus.project(project).events())


def best_metric(bus: Bus, metric: str, mode: str = "max", projects: list[str] | None = None) -> pa.Table:
    """Per project, the event with the best value of ``metric`` (``mode`` max or min).

    Columns: project, value, seq, role, kind, path, time; best project first.
    """
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', not {mode!r}")
    table = bus.index.scan(projects, columns=["project", "seq", "role", "kind", "path", "time", "metrics"])
    value = pc.map_lookup(table.column("metrics"), pa.scalar(metric), "first")
    table = table.drop_columns(["metrics"]).append_column("value", value).filter(pc.field("value").is_valid())
    if table.num_rows == 0:
        return table.select(["project", "value", "seq", "role", "kind", "path", "time"])
    best = table.group_by("project").aggregate([("value", mode)])
    best = best.select(["project", f"value_{mode}"]).rename_columns(["project", "value"])
    # Join back to find the event that achieved it (the earliest, if tied).
    rows = table.join(best, ["project", "value"], join_type="inner")
    rows = rows.sort_by([("project", "ascending"), ("seq", "ascending")])
    first = pc.not_equal(rows.column("project").slice(1), rows.column("project").slice(0, rows.num_rows - 1))
    keep = pa.concat_arrays([pa.array([True]), first.combine_chunks()]) if rows.num_rows else pa.array([], pa.bool_())
    rows = rows.filter(keep).select(["project", "value", "seq", "role", "kind", "path", "time"])
    return rows.sort_by([("value", "descending" if mode == "max" else "ascending"), ("project", "ascending")])


def tokens_by_role(bus: Bus, projects: list[str] | None = None) -> pa.Table:
    """Prompt and completion tokens and the number of LLM calls, per project and role."""
    table = bus.index.scan(projects, columns=["project", "role", "prompt_tokens", "completion_tokens"])
    table = table.filter(pc.field("prompt_tokens").is_valid() | pc.field("completion_tokens").is_valid())
    out = table.group_by(["project", "role"]).aggregate(
        [("prompt_tokens", "sum"), ("completion_tokens", "sum"), ("role", "count")]
    )
    out = out.select(["project", "role", "prompt_tokens_sum", "completion_tokens_sum", "role_count"])
    out = out.rename_columns(["project", "role", "prompt_tokens", "completion_tokens", "calls"])
    return out.sort_by(
        [("project", "ascending"), ("role", "ascending")]
    )
