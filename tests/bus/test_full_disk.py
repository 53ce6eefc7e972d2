"""A full disk, for real: a small tmpfs mounted for the test. Nothing is claimed that
was not written, nothing written is lost, and the bus works again once space is freed."""

import errno
import os
import subprocess

import pytest

from bus import Bus, BusConfig, BusFault


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KB tmpfs (``mount`` needs root, CAP_SYS_ADMIN: skipped elsewhere)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill(disk, keep_bytes: int = 0) -> None:
    """Fill ``disk`` to the last byte (then free ``keep_bytes`` again)."""
    with open(disk / "filler", "wb", buffering=0) as f:
        try:
            while f.write(b"\0" * 4096):
                pass
        except OSError as e:
            assert e.errno == errno.ENOSPC
    if keep_bytes:
        os.truncate(disk / "filler", os.path.getsize(disk / "filler") - keep_bytes)


def free(disk) -> None:
    (disk / "filler").unlink()


def rows_of(root, project="p"):
    return {r["seq"]: r for r in Bus(root).project(project).events().to_pylist()}  # a fresh process's view


def test_index_rows_on_a_full_disk_are_whole_or_refused(small_disk):
    """One unchecked os.write tore rows on a full disk and reported them written; every
    later row of that journal was glued to the torn one, unreadable even after space
    was freed (101 of 126 calls missing)."""
    root = small_disk / "root"
    view = Bus(root).create_project("p").as_role("orchestrator", "o")
    fill(small_disk)
    claimed, refused = [], []
    for i in range(126):
        try:
            claimed.append(view.record("decision", f"call {i} " + "x" * 200, subtask=f"s{i}"))
        except (BusFault, OSError) as e:
            refused.append(e)
    assert refused, "the disk never filled up"
    free(small_disk)
    for i in range(126, 226):
        claimed.append(view.record("decision", f"call {i} " + "x" * 200, subtask=f"s{i}"))
    seen = rows_of(root)
    missing = [r["summary"][:8] for r in claimed if seen.get(r["seq"], {}).get("summary") != r["summary"]]
    assert missing == [], f"{len(missing)} of {len(claimed)} calls that returned a row are not in the index"
    assert len(seen) == 1 + len(claimed)  # and no row for a call that raised
    assert all(isinstance(e, BusFault) and "disk is full" in str(e) and "nothing was recorded" in str(e)
               for e in refused), refused[:1]


def test_a_file_write_on_a_full_disk_changes_nothing(small_disk):
    root = small_disk / "root"
    coder = Bus(root).create_project("p").as_role("coder")
    coder.write("code/train.py", "v1\n")
    fill(small_disk)
    with pytest.raises(BusFault, match="disk is full"):
        coder.write("code/train.py", "v2 " * 10_000)
    assert (root / "projects" / "p" / "code" / "train.py").read_text() == "v1\n"
    assert os.listdir(root / "objects" / "p" / "tmp") == []  # no staged file left to fill the disk further
    free(small_disk)
    coder.write("code/train.py", "v3\n")
    assert [r["kind"] for r in rows_of(root).values()] == ["project_created", "write", "write"]


def test_an_append_on_a_full_disk_leaves_no_record_without_its_row(small_disk):
    root = small_disk / "root"
    coder = Bus(root).create_project("p").as_role("coder")
    coder.append("logs/implementation.md", "first\n")
    fill(small_disk)
    for _ in range(40):  # until the log's last page is full too
        try:
            coder.append("logs/implementation.md", "y" * 500 + "\n")
        except BusFault:
            break
    else:
        pytest.fail("the disk never filled up")
    free(small_disk)
    coder.append("logs/implementation.md", "last\n")
    seen = [r for r in rows_of(root).values() if r["kind"] == "append"]
    data = (root / "projects" / "p" / "logs" / "implementation.md").read_bytes()
    assert sum(r["size"] for r in seen) == len(data)  # every byte of the log is a recorded record
    assert data.startswith(b"first\n") and data.endswith(b"last\n")


def test_compaction_on_a_full_disk_keeps_every_row_and_fails_no_commit(small_disk):
    """The commit that triggers a compaction has written its row: a compaction that
    cannot write its segment must not turn it into an error, nor lose the journals."""
    root = small_disk / "root"
    bus = Bus(config=BusConfig(root=root, compact_rows=5))
    view = bus.create_project("p").as_role("orchestrator", "o")  # row 1 starts the journal's first page
    fill(small_disk)
    [view.record("decision", f"d{i}") for i in range(2, 6)]  # fit in that page; the 5th compacts
    assert len(rows_of(root)) == 5
    with pytest.raises(BusFault, match="every row stays in its journal"):
        bus.index.compact("p")
    segments = root / "index" / "segments" / "p"
    assert [n for n in os.listdir(segments) if not n.startswith("seg-")] == []  # no temp file left
    free(small_disk)
    assert bus.index.compact("p") == 5
    assert sorted(rows_of(root)) == [1, 2, 3, 4, 5]
