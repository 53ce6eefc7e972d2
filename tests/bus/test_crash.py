"""SIGKILL at every step of a write, and at random moments: the bus stays consistent."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus import Bus
from bus.crashpoints import POINTS
from bus.objects import sha256_file
from bus.reground import latest_files
from bus.repair import repair
from tests.bus.workers import content

REPO = Path(__file__).resolve().parents[2]


def run_worker(args, env_extra=None, kill_after=None, ready=None):
    """Run a worker; with ``kill_after``, SIGKILL it that many seconds after it starts,
    or after it creates the file ``ready`` (its first operation done) if given."""
    env = dict(os.environ, **(env_extra or {}))
    proc = subprocess.Popen([sys.executable, "-m", "tests.bus.workers", *map(str, args)], cwd=REPO, env=env)
    if kill_after is not None:
        while ready is not None and not os.path.exists(ready) and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
    return proc.wait(timeout=120)


def is_whole(text: str) -> bool:
    """True if ``text`` is exactly one output of ``workers.content``."""
    lines = text.splitlines()
    if not lines or not lines[-1].startswith("END "):
        return False
    _, name_i, length = lines[-1].split(" ")
    name, i = name_i.rsplit(":", 1)
    return text == content(name, int(i)) and int(length) == len(text) - len(lines[-1]) - 1


def check_after_crash(bus: Bus, project: str) -> None:
    """What must hold right after a SIGKILL, before any repair."""
    proj = Bus(bus.root).project(project)  # a fresh process's view
    events = proj.events()  # the index opens
    seqs = events.column("seq").to_pylist()
    assert len(seqs) == len(set(seqs)), "duplicate sequence numbers"
    for row in events.to_pylist():
        if row["kind"] == "write":  # no event claims a write that did not happen
            assert bus.store.read(project, row["hash"])  # exists, and hash verified
    for path in (proj.dir / "code").rglob("*.py"):
        assert is_whole(path.read_text()), f"torn file {path}"
    assert not list((proj.dir).rglob("*.tmp")), "temp files inside the workspace"


def check_repaired(bus: Bus, project: str):
    report = repair(Bus(bus.root), project)
    proj = Bus(bus.root).project(project)
    latest = {r["path"]: r for r in latest_files(proj.events()).to_pylist()}
    for path in (proj.dir).rglob("*"):
        if path.is_file():
            rel = str(path.relative_to(proj.dir))
            assert rel in latest, f"{rel} not indexed after repair"
            if rel.endswith(".py"):
                assert latest[rel]["hash"] == sha256_file(path)
            else:
                assert latest[rel]["size"] == path.stat().st_size
    log = proj.dir / "logs" / "implementation.md"
    if log.exists():
        assert all(line.split(" ")[1] == "record" for line in log.read_text().splitlines())
    assert repair(Bus(bus.root), project).clean, "a second repair found more to do"
    # The bus keeps working after the crash, with fresh sequence numbers.
    row = proj.as_role("coder", "after").write("code/after.py", content("after", 0))
    assert row["seq"] > max(proj.events().column("seq").to_pylist()[:-1])
    return report


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("nth", [1, 2])
def test_sigkill_at_each_point_of_a_write(tmp_path, point, nth):
    bus = Bus(tmp_path / "root")
    bus.create_project("p")
    rc = run_worker(["crash", bus.root, "p"], {"AISCI_CRASH_AT": f"{point}:{nth}"})
    assert rc == -signal.SIGKILL, f"the process did not die at {point}:{nth}"
    check_after_crash(bus, "p")
    events = Bus(bus.root).project("p").events()
    # Only the operation in flight may be missing: all completed ones are indexed.
    completed_writes = sum(1 for r in events.to_pylist() if r["kind"] == "write")
    assert completed_writes >= nth - 1
    report = check_repaired(bus, "p")
    # The write whose row was in flight is re-derived from the file; a torn append is cut.
    # (The first 'after_seq' hit is inside the write of code/a.py, the second inside an
    # append, before its record is written.)
    in_flight_write = point == "after_rename" or (point, nth) == ("after_seq", 1)
    expected = ["code/a.py"] if in_flight_write else ["logs/implementation.md"] if point == "mid_append" else []
    assert report.recovered == expected


def test_killed_compaction_leaves_no_duplicates(tmp_path):
    bus = Bus(tmp_path / "root")
    bus.create_project("p")
    rc = run_worker(["crash", bus.root, "p"], {"AISCI_CRASH_AT": "mid_compact:2"})
    assert rc == -signal.SIGKILL
    # Both the new segment and the journals it absorbed are on disk now.
    assert list((bus.root / "index" / "journal" / "p").glob("*.jsonl"))
    seqs = Bus(bus.root).project("p").events().column("seq").to_pylist()
    assert len(seqs) == len(set(seqs)) == 1 + 2 * 3  # created + two rounds of write/append/record
    Bus(bus.root).index.compact("p")
    assert Bus(bus.root).project("p").events().column("seq").to_pylist() == seqs


@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path):
    rng = random.Random(20261127)
    bus = Bus(tmp_path / "root")
    bus.create_project("p")
    for round_ in range(12):
        # The kill is timed from the worker's first write: on a loaded machine its
        # start alone (importing pyarrow) outlasted the delay, and rounds wrote nothing.
        ready = tmp_path / f"ready-{round_}"
        run_worker(["churn", bus.root, "p", f"c{round_}", 100_000, ready], kill_after=rng.uniform(0.1, 0.6),
                   ready=ready)
        check_after_crash(bus, "p")
        check_repaired(bus, "p")
    events = Bus(bus.root).project("p").events()
    assert events.num_rows >= 2 * 12  # every round wrote before its kill (its ready file comes after a write and an append)


def test_a_compaction_killed_while_moving_journals_loses_no_later_row(tmp_path):
    """This process keeps writing while another compacts and is SIGKILLed after moving
    this process's journal aside: the rows written after that must stay visible (with
    the journals moved before the counter told writers to start new files, they went
    on into the moved file, out of sight)."""
    bus = Bus(tmp_path / "root")
    view = bus.create_project("p").as_role("orchestrator", "live")
    first = [view.record("decision", f"before {i}")["seq"] for i in range(5)]
    rc = run_worker(["compact", bus.root, "p"], {"AISCI_CRASH_AT": "mid_compact_move"})
    assert rc == -signal.SIGKILL
    later = [view.record("decision", f"after {i}")["seq"] for i in range(5)]
    seen = Bus(bus.root).project("p").events().column("seq").to_pylist()
    assert seen == [1] + first + later
    Bus(bus.root).index.compact("p")
    assert Bus(bus.root).project("p").events().column("seq").to_pylist() == seen

