"""Eight real processes writing at once: no row lost, none duplicated, no torn record."""

import collections
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pytest

from bus import Bus, BusConfig
from tests.bus.workers import content

REPO = Path(__file__).resolve().parents[2]
N = 150


def spawn(*args):
    return subprocess.Popen([sys.executable, "-m", "tests.bus.workers", *map(str, args)], cwd=REPO)


@pytest.mark.slow
def test_eight_processes_same_and_different_projects(tmp_path):
    root = tmp_path / "root"
    bus = Bus(root)
    bus.create_project("shared")
    for i in range(4):
        bus.create_project(f"own-{i}")
    stop = tmp_path / "stop"
    reader = spawn("read", root, "shared", tmp_path / "seen.json", stop)
    # compact_rows=40 makes writers compact while the others write and the reader reads.
    procs = [spawn("write", root, "shared", f"w{i}", N, 40) for i in range(4)]
    procs += [spawn("write", root, f"own-{i}", f"o{i}", N, 40) for i in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    stop.touch()
    assert reader.wait(timeout=60) == 0

    fresh = Bus(config=BusConfig(root=root))
    shared = fresh.project("shared").events()
    seqs = shared.column("seq").to_pylist()
    assert len(seqs) == 1 + 4 * N  # project_created + every operation of every writer
    assert len(set(seqs)) == len(seqs) and seqs == sorted(seqs)
    by_writer = collections.Counter(shared.column("instance").to_pylist())
    assert all(by_writer[f"w{i}"] == N for i in range(4))
    for i in range(4):
        own = fresh.project(f"own-{i}").events()
        assert own.num_rows == 1 + N and set(own.column("instance").to_pylist()) == {"bus", f"o{i}"}

    # The follower, which only ever asked "what is new since my cursor", saw every row once.
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen == seqs

    # Appends of four processes to one log: every record whole, each exactly once.
    log = (fresh.project("shared").dir / "logs" / "implementation.md").read_text().splitlines()
    expected = {f"w{w} record {i} " + "x" * (i % 50) for w in range(4) for i in range(N) if i % 3 == 1}
    assert len(log) == len(expected) and set(log) == expected
    # Every record's index row points at exactly where the record is.
    data = (fresh.project("shared").dir / "logs" / "implementation.md").read_bytes()
    for row in shared.filter(pc.field("kind") == "append").to_pylist():
        assert data[row["offset"]:row["offset"] + row["size"]].decode().startswith(row["instance"] + " record")

    # Files hold the last content their writer wrote, never a mix.
    view = fresh.project("shared").as_role("viewer")
    for w in range(4):
        for k in range(5):
            last = max(i for i in range(N) if i % 3 == 0 and i % 5 == k)
            assert view.read(f"code/w{w}/f{k}.py") == content(f"w{w}", last)

    # Compaction really happened concurrently, and compacting the rest changes nothing.
    assert list((root / "index" / "segments" / "shared").glob("seg-*.parquet"))
    fresh.index.compact("shared")
    assert Bus(root).project("shared").events().column("seq").to_pylist() == seqs


def test_threads_reading_one_project_never_lose_rows(tmp_path):
    """Several threads of one process re-reading a project while another process writes
    it (a driver polling while a thread runs the project): every thread's view, and the
    process's cache they share, must end with every row."""
    import threading

    bus = Bus(tmp_path / "root")
    bus.create_project("p")
    done = threading.Event()
    seen: list[int] = []

    def poll():
        while not done.is_set():
            bus.project("p").events()
        seen.append(bus.project("p").events().num_rows)

    threads = [threading.Thread(target=poll) for _ in range(6)]
    for t in threads:
        t.start()
    writer = spawn("write", str(bus.root), "p", "w", "400")
    assert writer.wait(timeout=120) == 0
    done.set()
    for t in threads:
        t.join()
    expected = Bus(bus.root).project("p").events().num_rows
    assert expected == 401 and seen == [expected] * 6
