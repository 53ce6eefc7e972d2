"""Repair and rebuild of a project's index from what is on disk.

Run by ``aisci bus repair [PROJECT]`` after a crash (or at any time: it only adds).
What a SIGKILL can leave behind, and what repair does about it:

* a torn last line in a dead writer's journal (the row in flight): cut off;
* a sequence counter behind the journals (power loss before the counter reached the
  disk): moved past the highest sequence number seen;
* an unreadable Parquet segment: moved to ``index/quarantine/`` and its files
  re-indexed from the workspace (below);
* staged temp files of dead writers: removed (the write never happened);
* a workspace file whose content the index does not describe (the write whose row was
  in flight, or a file changed outside the bus): kept in the version store and
  recorded as a ``recovered`` event, which makes it the file's latest version;
* a log whose size is past its last indexed record (a torn or unrecorded append): the
  unindexed tail is cut off (and kept in the version store), so that the append,
  when it is made again, is there once; the same for a new log's first record (logs
  carry an extended attribute that tells them from files written outside the bus).
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from .bus import Bus
from .index import choose_segments
from .journal import parse_journal, read_counter, write_counter
from .objects import is_log, sha256_file
from .reground import latest_files
from .schema import KIND_APPEND, KIND_RECOVERED, SCHEMA

_STALE_TMP_S = 3600


@dataclass
class RepairReport:
    project: str
    torn_rows: int = 0
    counter_fixed: bool = False
    quarantined: list[str] = field(default_factory=list)
    temp_removed: int = 0
    recovered: list[str] = field(default_factory=list)
    unreadable_names: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.torn_rows or self.counter_fixed or self.quarantined or self.recovered or self.missing)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_writer(name: str) -> bool:
    """True if a temp file's writer (``host-pid-nonce-...``) is a dead process here."""
    parts = name.split("-")
    host = socket.gethostname().split(".")[0]
    if len(parts) >= 3 and parts[0] == host and parts[1].isdigit():
        return not _pid_alive(int(parts[1]))
    return False


def _fix_journals(bus: Bus, project: str, report: RepairReport) -> None:
    jdir = bus.index.journal_root / project
    if not jdir.is_dir():
        return
    fd = os.open(jdir / "SEQ", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        highest = 0
        for path in jdir.glob("*.jsonl"):
            data = path.read_bytes()
            rows, good = parse_journal(data)
            if good < len(data):
                os.truncate(path, good)
                report.torn_rows += 1
            highest = max([highest] + [r["seq"] for r in rows])
        sdir = bus.index.segment_root / project
        if sdir.is_dir():
            highest = max(highest, choose_segments(os.listdir(sdir))[1] - 1)
        next_seq, gen = read_counter(fd)
        if next_seq <= highest:
            write_counter(fd, highest + 1, gen + 1)
            report.counter_fixed = True
    finally:
        os.close(fd)


def _quarantine_segments(bus: Bus, project: str, report: RepairReport) -> None:
    sdir = bus.index.segment_root / project
    if not sdir.is_dir():
        return
    for path in sorted(sdir.glob("seg-*.parquet")):
        try:
            pq.read_table(path, schema=SCHEMA)
        except Exception:
            qdir = bus.root / "index" / "quarantine" / project
            qdir.mkdir(parents=True, exist_ok=True)
            os.rename(path, qdir / path.name)
            report.quarantined.append(path.name)
    for tmp in sdir.glob(".seg-*.tmp"):  # compaction killed before its rename
        tmp.unlink(missing_ok=True)
    # Rollups are a cross-project cache (bus.rollup): an unreadable one is dropped,
    # and the next scan builds a new one from the segments.
    for path in (bus.root / "index" / "rollup").glob("roll-*.parquet"):
        try:
            pq.read_table(path, schema=SCHEMA)
        except Exception:
            path.unlink(missing_ok=True)
            report.quarantined.append(f"rollup {path.name} (dropped: a cache)")


def _remove_stale_temp(bus: Bus, project: str, report: RepairReport) -> None:
    now = time.time()
    candidates = list(bus.store.tmp_dir(project).glob("*")) + list(Path(bus.project(project).dir).rglob(".*.unshare"))
    for tmp in candidates:
        try:
            if _dead_writer(tmp.name) or now - tmp.stat().st_mtime > _STALE_TMP_S:
                tmp.unlink()
                report.temp_removed += 1
        except FileNotFoundError:
            pass


def _cut_log_tail(bus: Bus, project: str, system, rel: str, full: Path, end: int) -> None:
    """Truncate a log to the end of its last indexed record. The cut bytes (a torn
    record, or one whose row was in flight) are kept in the version store."""
    with open(full, "rb") as f:
        f.seek(end)
        tail = f.read()
    digest = bus.store.put(project, tail)
    os.truncate(full, end)
    system.record(KIND_RECOVERED, f"repair: cut {len(tail)} unindexed bytes (an append in flight) "
                  f"from the end of the log; they are kept as object {digest[:12]}",
                  path=rel, hash=digest, size=len(tail))


def _reconcile_files(bus: Bus, project: str, report: RepairReport) -> None:
    proj = bus.project(project)
    system = proj.as_role("system", "repair")
    latest = {r["path"]: r for r in latest_files(proj.events()).to_pylist()}
    events = {r["seq"]: r for r in proj.events().select(["seq", "kind", "offset", "size", "hash"]).to_pylist()}
    on_disk: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(proj.dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            full = Path(dirpath) / name
            rel = os.path.relpath(full, proj.dir)
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                report.unreadable_names.append(rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
                continue
            if name.startswith(".") or full.is_symlink():
                continue
            on_disk.add(rel)
            known = latest.get(rel)
            size = full.stat().st_size
            if known is not None and events[known["version"]]["kind"] == KIND_APPEND:
                if size > known["size"]:  # an append in flight: cut it, keep its bytes
                    _cut_log_tail(bus, project, system, rel, full, known["size"])
                    report.recovered.append(rel)
                    continue
                if size == known["size"]:
                    continue
                why = f"log is {size} bytes but its last indexed record ends at {known['size']}"
            elif known is not None and known["hash"] == sha256_file(full):
                continue
            elif known is None and is_log(full):  # a new log whose first record was in flight
                _cut_log_tail(bus, project, system, rel, full, 0)
                full.unlink()  # it never had a committed record
                report.recovered.append(rel)
                continue
            else:
                why = "file on disk that the index did not know" if known is None else "content differs from the index"
            if size > bus.config.max_file_bytes:
                report.missing.append(f"{rel} (too large to recover through the bus)")
                continue
            # Adopt the file: its content becomes a stored version, and the workspace
            # file shares the stored inode like any bus-written file.
            staged, digest = bus.store.stage(project, full.read_bytes())
            bus.store.keep(project, staged, digest)
            os.rename(staged, full)
            system.record(KIND_RECOVERED, f"repair: {why}", path=rel, hash=digest, size=size, is_version=True)
            report.recovered.append(rel)
    report.missing += sorted(set(latest) - on_disk)


def repair(bus: Bus, project: str) -> RepairReport:
    """Make ``project``'s index consistent with its files again (see module doc)."""
    report = RepairReport(project)
    _fix_journals(bus, project, report)
    _quarantine_segments(bus, project, report)
    _remove_stale_temp(bus, project, report)
    _reconcile_files(bus, project, report)
    return report
