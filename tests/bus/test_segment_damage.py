"""A damaged Parquet segment loses nothing: it is caught by its checksum and rebuilt
from the journals it was made from; with no copy left, the files are re-indexed.
Damage is made on real files, as a bad sector or a torn write would leave it, and read
back by fresh processes' views (a new ``Bus``)."""

import os
import signal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bus import Bus, BusConfig, BusFault, query
from bus.reground import latest_files
from bus.repair import repair
from tests.bus.test_crash import run_worker

FACTS = ["seq", "kind", "summary", "subtask", "run", "status", "metrics"]


def make_history(bus: Bus, n: int = 20) -> list[dict]:
    """What a finished project's index holds: decisions, dispatches, results."""
    orch = bus.create_project("p").as_role("orchestrator", "o")
    for i in range(n):
        orch.record("decision", f"step {i}: try model {i}")
        orch.record("dispatch", f"s{i} to coder", subtask=f"s{i}")
        orch.record("experiment", f"r{i}: ok", run=f"r{i}", status="ok", metrics={"score": i / n})
    return facts(bus.root)


def facts(root) -> list[dict]:
    return Bus(root).project("p").events().select(FACTS).to_pylist()


def segment_of(root) -> Path:
    (path,) = (Path(root) / "index" / "segments" / "p").glob("seg-*.parquet")
    return path


def test_a_damaged_segment_is_rebuilt_from_its_journals(bus):
    """A damaged segment took every decision and result with it: repair quarantined it,
    and a finished project re-ran all its work."""
    before = make_history(bus)
    assert bus.index.compact("p") == 61
    seg = segment_of(bus.root)
    data = bytearray(seg.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64  # a bad sector
    seg.write_bytes(bytes(data))
    with pytest.raises(BusFault, match="run `aisci bus repair p`") as raised:  # a SegmentDamaged
        Bus(bus.root).project("p").events()
    assert type(raised.value).__name__ == "SegmentDamaged"
    with pytest.raises(BusFault, match=f"segment {seg.name} of project 'p'"):  # a query across projects
        query.best_metric(Bus(bus.root), "score")
    report = repair(Bus(bus.root), "p")
    assert report.rebuilt == [f"{seg.name}: 61 rows of the 61 it held, from the journals it was made from"]
    assert report.lost == [] and report.quarantined == [f"{seg.name} (damaged)"]
    assert facts(bus.root) == before  # every decision, dispatch and result, with its seq
    assert repair(Bus(bus.root), "p").clean


def test_a_segment_changed_but_still_readable_is_caught_by_its_checksum(bus):
    before = make_history(bus)
    bus.index.compact("p")
    seg = segment_of(bus.root)
    table = pq.read_table(seg)
    pq.write_table(table.slice(0, 30), seg)  # a valid Parquet file, 31 rows short
    with pytest.raises(BusFault, match="does not match its checksum"):
        Bus(bus.root).project("p").events()
    report = repair(Bus(bus.root), "p")
    assert report.rebuilt and not report.lost
    assert facts(bus.root) == before


def test_a_merged_segment_is_rebuilt_from_many_compactions_journals(tmp_path):
    bus = Bus(config=BusConfig(root=tmp_path / "r", compact_rows=7, max_segments=2))
    before = make_history(bus, 30)  # 91 rows: many compactions, merged as they go
    bus.index.compact("p")
    seg = max((bus.root / "index" / "segments" / "p").glob("seg-*.parquet"), key=lambda p: p.stat().st_size)
    os.truncate(seg, seg.stat().st_size // 2)  # a torn file
    report = repair(Bus(bus.root), "p")
    assert facts(bus.root) == before
    assert len(report.rebuilt) == 1 and not report.lost


def test_a_segment_damaged_after_a_killed_compaction_is_rebuilt(tmp_path):
    """SIGKILL between writing a segment and moving its journals aside, then damage to
    that segment: its rows come back from the journals still in place."""
    bus = Bus(tmp_path / "r")
    bus.create_project("p")
    assert run_worker(["crash", bus.root, "p"], {"AISCI_CRASH_AT": "mid_compact:2"}) == -signal.SIGKILL
    seqs = Bus(bus.root).project("p").events().column("seq").to_pylist()
    newest = max((bus.root / "index" / "segments" / "p").glob("seg-*.parquet"))
    newest.write_bytes(b"PAR1 not a parquet file PAR1")
    repair(Bus(bus.root), "p")
    assert Bus(bus.root).project("p").events().column("seq").to_pylist()[: len(seqs)] == seqs


def test_a_segment_with_no_copy_left_falls_back_to_the_files(bus):
    """Rows with no copy left are reported lost, and the files are re-indexed from the
    workspace: the files on the bus stay the truth."""
    coder = bus.create_project("p").as_role("coder", "c")
    for i in range(5):
        coder.write(f"code/m{i}.py", f"# module {i}\n")
    bus.index.compact("p")
    for kept in (bus.root / "index" / "sources" / "p").glob("*"):  # as a segment from before sources
        kept.unlink()
    seg = segment_of(bus.root)
    seg.write_bytes(seg.read_bytes()[:100])
    report = repair(Bus(bus.root), "p")
    assert report.lost == [f"6 rows of {seg.name} (no copy left); files are re-indexed from the workspace"]
    assert sorted(report.recovered) == [f"code/m{i}.py" for i in range(5)]
    latest = latest_files(Bus(bus.root).project("p").events())
    assert latest.column("path").to_pylist() == [f"code/m{i}.py" for i in range(5)]
    assert any(line.startswith("LOST") for line in report.lines())


def test_rows_only_a_damaged_segment_holds_are_kept_when_it_still_parses(bus):
    """A segment whose sum no longer matches (here the sum file itself is damaged) and
    whose rows exist nowhere else: repair keeps what the segment still parses to, and
    says so, rather than dropping every decision in it."""
    before = make_history(bus, 5)
    bus.index.compact("p")
    for kept in (bus.root / "index" / "sources" / "p").glob("*"):  # no other copy left
        kept.unlink()
    seg = segment_of(bus.root)
    seg.with_suffix(".sum").write_text('{"sha256": "' + "0" * 64 + '", "rows": 16}')
    report = repair(Bus(bus.root), "p")
    assert report.lost == [f"16 rows of {seg.name} exist only in the damaged segment, which still parses: "
                           "kept as read, check them"]
    assert facts(bus.root) == before
    assert repair(Bus(bus.root), "p").clean

