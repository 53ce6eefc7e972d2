"""The event index's Arrow schema: one row per thing that happened on the bus.

Every write, refused request, LLM call, dispatch, experiment and decision is a row.
Rows are stored as JSON lines in per-writer journals and compacted into Parquet
segments (see ``bus.journal`` and ``bus.index``); both decode to this schema, and
the Parquet files are plain enough for DuckDB or pandas to read as they are.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

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


def rows_to_table(rows: list[dict]) -> pa.Table:
    """Journal rows (dicts with ``time`` in integer microseconds) to an Arrow table."""
    if not rows:
        return empty_table()
    return pa.Table.from_pylist(rows, schema=SCHEMA)
