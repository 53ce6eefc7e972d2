"""The event index's Arrow schema: one row per thing that happened on the bus.

Every write, refused request, LLM call, dispatch, experiment and decision is a row.
Rows are stored as JSON lines in per-writer journals and compacted into Parquet
segments (see ``bus.journal`` and ``bus.index``); both decode to this schema, and
the Parquet files are plain enough for DuckDB or pandas to read as they are.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq

SCHEMA_VERSION = 3  # 2: the typed columns subtask, run, attempt, status; 3: model (older segments read as null)

SCHEMA = pa.schema(
    [
        pa.field("project", pa.string(), nullable=False),
        # Per-project sequence number: unique, increasing in commit order (may have
        # gaps where a writer died between allocating a number and writing its row).
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("role", pa.string(), nullable=False),
        pa.field("instance", pa.string()),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("path", pa.string()),
        # A file version *is* the sequence number of the write that produced it, so
        # versions are unique and increasing per path without any per-path counter.
        pa.field("version", pa.int64()),
        pa.field("hash", pa.string()),  # sha256 of the content written (hex)
        pa.field("size", pa.int64()),  # bytes written (for appends: of this record)
        pa.field("offset", pa.int64()),  # appends: where the record starts in the file
        pa.field("summary", pa.string()),
        pa.field("metrics", pa.map_(pa.string(), pa.float64())),
        pa.field("prompt_tokens", pa.int64()),
        pa.field("completion_tokens", pa.int64()),
        pa.field("derived_from", pa.list_(pa.int64())),
        pa.field("writer", pa.string()),  # host-pid-nonce of the process that wrote the row
        # Facts the framework derives its state from, as columns (never parsed out of
        # the summary, which is for people): the subtask a dispatch/complete is about,
        # the run a request/result is about, which attempt, and its status.
        pa.field("subtask", pa.string()),
        pa.field("run", pa.string()),
        pa.field("attempt", pa.int64()),
        pa.field("status", pa.string()),
        # An LLM call's model (backend/name): tokens are accounted per model.
        pa.field("model", pa.string()),
    ],
    metadata={"aisci.schema_version": str(SCHEMA_VERSION)},
)

COLUMNS = tuple(SCHEMA.names)

# Event kinds the bus itself emits; other layers add their own (llm_call, dispatch,
# experiment, decision, ...): the index does not restrict the vocabulary.
FILE_KINDS = ("write", "append")
KIND_WRITE = "write"
KIND_APPEND = "append"
KIND_REFUSED = "refused"
KIND_PROJECT = "project_created"
KIND_RECOVERED = "recovered"


def empty_table() -> pa.Table:
    return SCHEMA.empty_table()


def write_parquet_atomic(table: pa.Table, path: Path, **options) -> None:
    """Write ``table`` to ``path`` so that readers see the whole file or none of it:
    a temp file in the same folder, fsynced, then renamed into place."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd", **options)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:  # a full disk: leave no half-written temp file behind
        tmp.unlink(missing_ok=True)
        raise


# -- journal encoding -------------------------------------------------------------------
# Journal lines are JSON objects that Arrow's C++ JSON reader parses directly (ten
# times faster than json.loads per line): time is integer microseconds and metrics
# are a list of {"k": name, "v": value} (the reader cannot parse dynamic-key objects).

# Text columns of an event row (a summary above all: agents and models write them)
# are cut to this many characters when the row is made, so that no row is larger than
# a reader handles in one piece; whatever is longer belongs in a file.
MAX_TEXT_CHARS = 4000

_KV = pa.struct([("k", pa.string()), ("v", pa.float64())])
JOURNAL_SCHEMA = pa.schema(
    [pa.field(f.name, pa.int64() if f.name == "time" else pa.list_(_KV) if f.name == "metrics" else f.type)
     for f in SCHEMA]
)
_PARSE = pj.ParseOptions(explicit_schema=JOURNAL_SCHEMA, unexpected_field_behavior="ignore")
# Threads pay off only on large inputs (a cross-project scan), not on one journal tail.
_READ_SMALL = pj.ReadOptions(use_threads=False)
_READ_LARGE = pj.ReadOptions(use_threads=True, block_size=1 << 20)


def encode_row(row: dict) -> bytes:
    """One journal line for ``row`` (a dict with SCHEMA's column names)."""
    metrics = row.get("metrics")
    if metrics:
        row = dict(row, metrics=[{"k": str(k), "v": float(v)} for k, v in metrics.items()])
    elif "metrics" in row:  # an empty map is no metrics (a {} line would not decode as a list)
        row = {k: v for k, v in row.items() if k != "metrics"}
    return (json.dumps(row, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def _from_journal_schema(table: pa.Table) -> pa.Table:
    time_col = table.column("time").cast(pa.timestamp("us", tz="UTC"))
    kv = table.column("metrics").combine_chunks()
    metrics = pa.MapArray.from_arrays(kv.offsets, kv.values.field("k"), kv.values.field("v"), mask=kv.is_null())
    table = table.set_column(table.schema.get_field_index("time"), SCHEMA.field("time"), time_col)
    table = table.set_column(table.schema.get_field_index("metrics"), SCHEMA.field("metrics"), metrics)
    return table.cast(SCHEMA)


class Decoded(NamedTuple):
    """A journal's bytes, decoded."""

    table: pa.Table  # the good rows, as a SCHEMA table
    good: int  # bytes up to the end of the last whole line: where the next read starts
    bad: list[tuple[int, int]]  # (offset, length) of each line that is not a row, skipped


_REQUIRED = (("project", str), ("seq", int), ("time", int), ("role", str), ("kind", str))
_ROW_START = b'{"project":'  # every row the bus writes starts so (``encode_row`` of ``_row``)


def _is_row(obj: object) -> bool:
    return isinstance(obj, dict) and all(
        isinstance(obj.get(k), t) and not isinstance(obj.get(k), bool) for k, t in _REQUIRED)


def _read(data: bytes, one_block: bool = False) -> pa.Table:
    """``one_block``: parse ``data`` as one block, so a row longer than Arrow's block
    (1 MiB; a bus before MAX_TEXT_CHARS wrote such rows) is read, not taken as damage."""
    if one_block:
        options = pj.ReadOptions(use_threads=False, block_size=max(1 << 20, len(data) + 1))
    else:
        options = _READ_LARGE if len(data) > (1 << 20) else _READ_SMALL
    return pj.read_json(io.BytesIO(data), read_options=options, parse_options=_PARSE)


def _complete(table: pa.Table) -> bool:
    return all(table.column(k).null_count == 0 for k, _ in _REQUIRED)


def decode_journal(data: bytes) -> Decoded:
    """Rows of a journal's bytes (see ``Decoded``).

    An unterminated last line is the row in flight (or one a full disk tore): not
    read, and not bad. A line that is not a row (a damaged byte, a row glued to the
    torn one before it by an older bus) is skipped and reported in ``bad``, never a
    reason to drop the rows after it; a whole row glued behind a torn one is kept.
    """
    good = data.rfind(b"\n") + 1
    if good == 0:
        return Decoded(empty_table(), 0, [])
    try:  # the fast path: one Arrow call for the whole journal
        table = _read(data[:good])
        if _complete(table):
            return Decoded(_from_journal_schema(table), good, [])
    except pa.ArrowException:
        pass
    lines, offsets, bad = _sort_lines(data[:good])
    try:
        table = _read(b"".join(lines), one_block=True) if lines else None
    except pa.ArrowException:  # a line of the wrong types: find it one line at a time
        table = None
    if table is None or not _complete(table):
        kept = []
        for line, offset in zip(lines, offsets):
            try:
                one = _read(line, one_block=True)
            except pa.ArrowException:
                one = None
            if one is not None and _complete(one):
                kept.append(one)
            else:
                bad.append((offset, len(line)))
        table = pa.concat_tables(kept) if kept else None
    bad.sort()
    return Decoded(_from_journal_schema(table) if table is not None else empty_table(), good, bad)


def _sort_lines(data: bytes) -> tuple[list[bytes], list[int], list[tuple[int, int]]]:
    """The whole lines that hold a row and their offsets, and (offset, length) of
    those that do not (json.loads per line: the slow path, for damaged journals only)."""
    lines, offsets, bad = [], [], []
    start = 0
    while start < len(data):
        end = data.index(b"\n", start) + 1
        line = data[start:end]
        if line.strip():
            at = 0
            try:
                ok = _is_row(json.loads(line))
            except ValueError:
                ok = False
            if not ok:  # a whole row glued behind a torn one: keep the row, report the rest
                at = line.rfind(_ROW_START, 1)
                try:
                    ok = at > 0 and _is_row(json.loads(line[at:]))
                except ValueError:
                    ok = False
                if ok:
                    bad.append((start, at))
                else:
                    bad.append((start, len(line)))
            if ok:
                lines.append(line[at:])
                offsets.append(start + at)
        start = end
    return lines, offsets, bad
