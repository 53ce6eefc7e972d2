"""A bad byte in a journal loses nothing else: a damaged line is skipped and
reported, never a reason to drop the rows after it (damage made on real files, read
back by fresh processes' views: a new ``Bus``)."""

from pathlib import Path

from bus import Bus
from bus.repair import repair


def facts(root) -> list[dict]:
    return Bus(root).project("p").events().select(["seq", "kind", "summary", "subtask"]).to_pylist()


def journal_of(root) -> Path:
    (path,) = (Path(root) / "index" / "journal" / "p").glob("*.jsonl")
    return path


def test_one_bad_line_in_a_journal_costs_that_line_only(bus):
    """A bad byte in the middle of a journal ended it: readers stopped there, and repair
    cut off every row after it (21 intact rows lost)."""
    orch = bus.create_project("p").as_role("orchestrator", "o")
    for i in range(42):
        orch.record("decision", f"d{i}", subtask=f"s{i}")
    path = journal_of(bus.root)
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 43
    lines[21] = lines[21][:30] + b"\x00" + lines[21][31:]  # one bad byte, 21 rows after it
    path.write_bytes(b"".join(lines))
    expected = [f"d{i}" for i in range(42) if i != 20]  # line 21 is d20 (line 0 is project_created)
    assert [r["summary"] for r in facts(bus.root)[1:]] == expected

    report = repair(Bus(bus.root), "p")
    assert len(report.bad_records) == 1 and "kept as index/quarantine/p/" in report.bad_records[0]
    assert any("bad record" in line for line in report.lines())
    assert [r["summary"] for r in facts(bus.root)[1:]] == expected  # repair lost none of them
    assert b"\x00" in next((bus.root / "index" / "quarantine" / "p").glob("*.bad")).read_bytes()
    assert repair(Bus(bus.root), "p").clean
    row = Bus(bus.root).project("p").as_role("orchestrator").record("decision", "after")
    assert row["seq"] == 44


def test_lines_of_the_wrong_shape_are_skipped_and_glued_rows_kept(bus):
    """Valid JSON of the wrong type made every read of the project crash; a row glued
    behind a row a full disk tore (as an older bus left them) was lost with it."""
    orch = bus.create_project("p").as_role("orchestrator", "o")
    for i in range(10):
        orch.record("decision", f"d{i}")
    path = journal_of(bus.root)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b'"seq":4,', b'"seq":"four",')
    lines[6] = lines[5][:25] + lines[6]  # the torn start of a row, then row 7 whole
    del lines[5]
    path.write_bytes(b"".join(lines))
    assert [r["summary"] for r in facts(bus.root)[1:]] == [f"d{i}" for i in range(10) if i not in (2, 4)]
    report = repair(Bus(bus.root), "p")
    assert len(report.bad_records) == 2 and report.compacted == 9  # project_created + 8 decisions
    assert [r["summary"] for r in facts(bus.root)[1:]] == [f"d{i}" for i in range(10) if i not in (2, 4)]
