"""How the event index was chosen: one event committed at a time, by 1 and by 4 processes.

    pip install -e '.[bench]' && python -m benchmarks.perf.index_choice [--rows 200]

Candidates (DESIGN.md, issue 2): Delta Lake (deltalake / delta-rs), Lance (pylance),
and our per-writer JSON-line journals compacted into Parquet (``bus.index``). Each
bus event must be committed before the write that caused it returns, so the figure
that matters is single-row commits per second, and whether concurrent writers of
one project slow or fail each other. The results are in docs/index-mechanism.md.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa

SCHEMA = pa.schema([("seq", pa.int64()), ("writer", pa.string()), ("path", pa.string()), ("hash", pa.string())])


def _row(i: int, w: str) -> pa.Table:
    return pa.table({"seq": [i], "writer": [w], "path": [f"code/f{i}.py"], "hash": ["0" * 64]}, schema=SCHEMA)


def commit_delta(where: str, w: str, n: int) -> tuple[int, float, float]:
    import deltalake

    failures, start = 0, time.time()
    for i in range(n):
        for _ in range(20):  # retry on commit conflicts
            try:
                deltalake.write_deltalake(where, _row(i, w), mode="append")
                break
            except Exception:
                failures += 1
    return failures, start, time.time()


def commit_lance(where: str, w: str, n: int) -> tuple[int, float, float]:
    import lance

    failures, start = 0, time.time()
    for i in range(n):
        for _ in range(20):
            try:
                mode = "append" if Path(where).exists() else "create"
                lance.write_dataset(_row(i, w), where, mode=mode)
                break
            except Exception:
                failures += 1
    return failures, start, time.time()


def commit_bus(where: str, w: str, n: int) -> tuple[int, float, float]:
    from bus import Bus

    view = Bus(where).create_project("choice").as_role("system", w)
    start = time.time()
    for i in range(n):
        view.record("bench", f"row {i}", path=f"code/f{i}.py", hash="0" * 64)
    return 0, start, time.time()


def count(kind: str, where: str) -> tuple[int, float]:
    """Rows committed, read back whole, and the read's time in ms (imports excluded)."""
    if kind == "delta":
        import deltalake

        t0 = time.perf_counter()
        rows = deltalake.DeltaTable(where).to_pyarrow_table().num_rows
    elif kind == "lance":
        import lance

        t0 = time.perf_counter()
        rows = lance.dataset(where).count_rows() - 1  # minus the row that created it
    else:
        from bus import Bus

        t0 = time.perf_counter()
        rows = Bus(where).project("choice").events().num_rows - 1  # minus project_created
    return rows, (time.perf_counter() - t0) * 1000


def run(kind: str, base: Path, writers: int, n: int) -> None:
    fn = {"delta": commit_delta, "lance": commit_lance, "bus": commit_bus}[kind]
    where = str(base / f"{kind}-{writers}")
    if kind == "lance":  # lance needs the dataset created before concurrent appends
        commit_lance(where, "init", 1)
    with mp.get_context("spawn").Pool(writers) as pool:
        results = pool.starmap(fn, [(where, f"w{i}", n) for i in range(writers)])
    # Timed inside the workers (process start and imports excluded).
    failures = sum(r[0] for r in results)
    elapsed = max(r[2] for r in results) - min(r[1] for r in results)
    rows, read_ms = count(kind, where)
    print(f"{kind:6s} writers={writers} commits/s={writers * n / elapsed:8.1f} rows={rows}/{writers * n} "
          f"conflict_retries={failures} read_all_ms={read_ms:.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200, help="rows each writer commits")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="index_choice-"))
    try:
        for kind in ("bus", "lance", "delta"):
            for writers in (1, 4):
                run(kind, base, writers, args.rows)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
