"""Repair and rebuild of a project's index from what is on disk; every step is reported.

Run by ``aisci bus repair [PROJECT]`` after a crash (or at any time: it only adds).
What a SIGKILL can leave behind, and what repair does about it:

* a torn last line in a journal (the row in flight at a crash, or one a full disk
  tore): cut off;
* a line in the middle of a journal that is not a row (a damaged byte): skipped and
  reported, its bytes kept in ``index/quarantine/<project>/``, and the journals
  compacted so that it leaves the live index. It used to end the journal: repair cut
  everything after it (21 good rows lost after one bad line);
* a sequence counter behind the journals (power loss before the counter reached the
  disk): moved past the highest sequence number seen;
* an unreadable Parquet segment: moved to ``index/quarantine/`` and its files
  re-indexed from the workspace (below);
* staged temp files of dead writers: removed (the write never happened);
* the workspace side (``bus.reconcile``): files the index does not describe, logs
  with unindexed tails, links and FIFOs (left alone: the bus never follows links).
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass, field

import pyarrow.compute as pc
import pyarrow.parquet as pq

from .bus import Bus
from .index import choose_segments
from .journal import dead_writer, read_counter, write_counter
from .reconcile import STALE_TMP_S, reconcile
from .schema import SCHEMA, decode_journal

__all__ = ["RepairReport", "repair"]


@dataclass
class RepairReport:
    """What ``repair`` found and did to one project (``lines()`` says it in words)."""

    project: str
    torn_rows: int = 0  # unterminated last lines cut off journals
    bad_records: list[str] = field(default_factory=list)  # lines that were not rows: skipped, kept aside
    compacted: int = 0  # rows compacted so that bad lines left the live journals
    counter_fixed: bool = False
    quarantined: list[str] = field(default_factory=list)
    temp_removed: int = 0
    recovered: list[str] = field(default_factory=list)
    unreadable_names: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)  # links, FIFOs: never followed or read

    @property
    def clean(self) -> bool:
        """True when there was nothing to repair (links left alone do not count)."""
        return not (self.torn_rows or self.bad_records or self.counter_fixed or self.quarantined or self.recovered
                    or self.missing)

    def lines(self) -> list[str]:
        """The report, one line per thing found or done."""
        out = [f"cut {self.torn_rows} torn last row(s) off journals"] if self.torn_rows else []
        out += [f"bad record: {b}" for b in self.bad_records]
        if self.compacted:
            out.append(f"compacted {self.compacted} rows so that the bad records left the live journals")
        if self.counter_fixed:
            out.append("sequence counter: moved past the highest sequence number found")
        out += [f"quarantined {q}" for q in self.quarantined]
        if self.temp_removed:
            out.append(f"removed {self.temp_removed} temp file(s) of dead writers")
        out += [f"recovered {r}" for r in self.recovered]
        out += [f"indexed but missing on disk: {m}" for m in self.missing]
        out += [f"not UTF-8, left alone: {n}" for n in self.unreadable_names]
        out += [f"left alone: {a}" for a in self.left_alone]
        return out

    def __str__(self) -> str:
        return f"{self.project}: " + ("consistent" if self.clean else "; ".join(self.lines()))


def _fix_journals(bus: Bus, project: str, report: RepairReport) -> None:
    jdir = bus.index.journal_root / project
    if not jdir.is_dir():
        return
    quarantine = bus.root / "index" / "quarantine" / project
    fd = os.open(jdir / "SEQ", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        highest = 0
        for path in sorted(jdir.glob("*.jsonl")):
            data = path.read_bytes()
            decoded = decode_journal(data)
            if decoded.good < len(data):
                os.truncate(path, decoded.good)
                report.torn_rows += 1
            for offset, length in decoded.bad:
                quarantine.mkdir(parents=True, exist_ok=True)
                kept = quarantine / f"{path.name}.{offset}.bad"
                kept.write_bytes(data[offset:offset + length])
                report.bad_records.append(f"{path.name} at byte {offset}: {length} bytes that are not an index "
                                          f"row, skipped (kept as {kept.relative_to(bus.root)})")
            if decoded.table.num_rows:
                highest = max(highest, pc.max(decoded.table.column("seq")).as_py())
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
    for tmp in bus.store.tmp_dir(project).glob("*"):
        try:
            if dead_writer(tmp.name) or now - tmp.stat().st_mtime > STALE_TMP_S:
                tmp.unlink()
                report.temp_removed += 1
        except FileNotFoundError:
            pass


def repair(bus: Bus, project: str) -> RepairReport:
    """Make ``project``'s index consistent with its files again (see the module doc).

    Returns what was found and done; ``str(report)`` and ``report.lines()`` say it in words.
    """
    report = RepairReport(project)
    _fix_journals(bus, project, report)
    _quarantine_segments(bus, project, report)
    if report.bad_records:
        report.compacted = max(bus.index.compact(project), 0)
    _remove_stale_temp(bus, project, report)
    reconcile(bus, project, report)
    return report
