"""Repair of a project's index from what is on disk; every step is reported.

Run by ``aisci bus repair [PROJECT]`` after a crash, and by every resume (or at any
time: it only adds). Repair expects the project to be idle. What it finds and does:

* a torn last line in a journal (the row in flight at a crash, or one a full disk
  tore): cut off;
* a line in the middle of a journal that is not a row (a damaged byte): skipped and
  reported, its bytes kept in ``index/quarantine/<project>/``, and the journals
  compacted so that it leaves the live index. It used to end the journal: repair cut
  everything after it (21 good rows lost after one bad line);
* a sequence counter that does not parse (garbage made repair and resume crash), or
  that is behind the index (power loss): set one past the highest sequence number in
  journals, kept sources and segments;
* a Parquet segment that does not parse or match its checksum: moved to
  ``index/quarantine/`` and rebuilt from the journals it was made from
  (``bus.segments``), plus any other copy of its rows (another segment, the rollup);
  rows only the damaged segment holds are kept as read if it still parses, and
  reported; rows that exist nowhere are reported lost, and the files they described
  are re-indexed from the workspace (below): the files on the bus stay the truth;
* a segment written before checksums: given one;
* staged temp files of dead writers: removed (the write never happened);
* the workspace side (``bus.reconcile``): files the index does not describe, logs
  with unindexed tails, links and FIFOs (left alone: the bus never follows links).
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import rollup
from .bus import Bus
from .errors import CounterDamaged, SegmentDamaged
from .journal import dead_writer, read_counter, write_counter
from .reconcile import STALE_TMP_S, reconcile
from .schema import SCHEMA, decode_journal, empty_table
from .segments import (
    SEG_RE,
    dedupe,
    read_segment,
    source_rows,
    sum_of,
    write_segment,
    write_sum,
)

__all__ = ["RepairReport", "repair"]


@dataclass
class RepairReport:
    """What ``repair`` found and did to one project (``lines()`` says it in words)."""

    project: str
    torn_rows: int = 0  # unterminated last lines cut off journals
    bad_records: list[str] = field(default_factory=list)  # lines that were not rows: skipped, kept aside
    compacted: int = 0  # rows compacted so that bad lines left the live journals
    counter_fixed: bool = False
    counter_note: str = ""
    quarantined: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)  # damaged segments rebuilt
    lost: list[str] = field(default_factory=list)  # rows no copy was left of
    checksummed: list[str] = field(default_factory=list)  # segments from before checksums
    temp_removed: int = 0
    recovered: list[str] = field(default_factory=list)
    unreadable_names: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)  # links, FIFOs: never followed or read

    @property
    def clean(self) -> bool:
        """True when there was nothing to repair (links left alone do not count)."""
        return not (self.torn_rows or self.bad_records or self.counter_fixed or self.quarantined or self.rebuilt
                    or self.lost or self.checksummed or self.recovered or self.missing)

    def lines(self) -> list[str]:
        """The report, one line per thing found or done."""
        out = [f"cut {self.torn_rows} torn last row(s) off journals"] if self.torn_rows else []
        out += [f"bad record: {b}" for b in self.bad_records]
        if self.compacted:
            out.append(f"compacted {self.compacted} rows so that the bad records left the live journals")
        if self.counter_note:
            out.append(f"sequence counter: {self.counter_note}")
        out += [f"quarantined {q}" for q in self.quarantined]
        out += [f"rebuilt {r}" for r in self.rebuilt]
        out += [f"LOST {x}" for x in self.lost]
        if self.checksummed:
            out.append(f"checksummed {len(self.checksummed)} segment(s) written before checksums")
        if self.temp_removed:
            out.append(f"removed {self.temp_removed} temp file(s) of dead writers")
        out += [f"recovered {r}" for r in self.recovered]
        out += [f"indexed but missing on disk: {m}" for m in self.missing]
        out += [f"not UTF-8, left alone: {n}" for n in self.unreadable_names]
        out += [f"left alone: {a}" for a in self.left_alone]
        return out

    def __str__(self) -> str:
        return f"{self.project}: " + ("consistent" if self.clean else "; ".join(self.lines()))


def _locked_counter(bus: Bus, project: str) -> int:
    """The project's SEQ file, open and locked (the caller closes it)."""
    jdir = bus.index.journal_root / project
    jdir.mkdir(parents=True, exist_ok=True)
    fd = os.open(jdir / "SEQ", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _fix_journals(bus: Bus, project: str, report: RepairReport) -> None:
    jdir = bus.index.journal_root / project
    quarantine = bus.root / "index" / "quarantine" / project
    fd = _locked_counter(bus, project)
    try:
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
        _fix_counter(bus, project, fd, report)
    finally:
        os.close(fd)


def _fix_counter(bus: Bus, project: str, fd: int, report: RepairReport) -> None:
    floor = bus.index.next_seq_on_disk(project)
    try:
        next_seq, gen = read_counter(fd, bus.index.journal_root / project / "SEQ")
    except CounterDamaged:
        raw = os.pread(fd, 48, 0)
        # A new generation: a writer that outlived a damaged counter starts a new journal file.
        write_counter(fd, floor, int(time.time()))
        os.ftruncate(fd, 40)
        report.counter_fixed = True
        report.counter_note = (f"was unreadable ({raw!r}); set to {floor}, one past the highest sequence "
                               "number in the journals and segments")
        return
    if next_seq < floor:
        write_counter(fd, floor, gen + 1)
        report.counter_fixed = True
        report.counter_note = f"was {next_seq}, behind the index (a power loss?); set to {floor}"


def _other_copies(bus: Bus, project: str, lo: int, hi: int, skip: set[str]) -> pa.Table:
    """Every row of ``project`` with ``lo <= seq < hi`` found outside the segments in
    ``skip``: kept sources, journals, other readable segments, the newest rollup."""
    index = bus.index
    parts = [source_rows([index.source_root / project, index.journal_root / project])]
    sdir = index.segment_root / project
    for name in sorted(os.listdir(sdir)):
        if SEG_RE.match(name) and name not in skip:
            try:
                parts.append(read_segment(sdir / name))
            except (SegmentDamaged, FileNotFoundError):
                pass
    roll, covers = rollup.newest(index.index_root)
    if roll is not None and covers.get(project, 0) > lo:
        try:
            parts.append(pq.read_table(roll, schema=SCHEMA, filters=pc.field("project") == project))
        except (pa.ArrowException, OSError):
            pass  # a cache: the step below drops it if it is damaged
    rows = dedupe(pa.concat_tables([t.replace_schema_metadata(SCHEMA.metadata) for t in [empty_table()] + parts]))
    return rows.filter((pc.field("seq") >= lo) & (pc.field("seq") < hi))


def _last_resort(rows: pa.Table, damaged: Path) -> tuple[pa.Table, int]:
    """``rows`` plus the rows of the ``damaged`` segment that no other copy holds, if
    it still parses (a sum file damaged, or values changed): better kept, and said,
    than lost. Returns them and how many came from the damaged segment."""
    try:
        own = pq.read_table(damaged, schema=SCHEMA).replace_schema_metadata(SCHEMA.metadata)
    except (pa.ArrowException, OSError, ValueError):
        return rows, 0
    extra = own.filter(pc.invert(pc.is_in(own.column("seq"), value_set=rows.column("seq").combine_chunks())))
    if extra.num_rows == 0:
        return rows, 0
    return dedupe(pa.concat_tables([rows.replace_schema_metadata(SCHEMA.metadata), extra])), extra.num_rows


def _fix_segments(bus: Bus, project: str, report: RepairReport) -> None:
    sdir = bus.index.segment_root / project
    if not sdir.is_dir():
        return
    fd = _locked_counter(bus, project)  # no compaction while segments are replaced
    try:
        damaged: dict[str, dict | None] = {}
        for name in sorted(n for n in os.listdir(sdir) if SEG_RE.match(n)):
            path = sdir / name
            try:
                table = read_segment(path)
            except SegmentDamaged:
                damaged[name] = sum_of(path)
                continue
            if sum_of(path) is None:  # written before segments had checksums
                write_sum(path, path.read_bytes(), table.num_rows)
                report.checksummed.append(name)
        quarantine = bus.root / "index" / "quarantine" / project
        for name, meta in damaged.items():
            quarantine.mkdir(parents=True, exist_ok=True)
            os.rename(sdir / name, quarantine / name)
            if (sdir / name).with_suffix(".sum").exists():
                os.rename((sdir / name).with_suffix(".sum"), (quarantine / name).with_suffix(".sum"))
            bus.index.forget_segment(sdir / name)
            report.quarantined.append(f"{name} (damaged)")
            lo, hi = (int(x) for x in SEG_RE.match(name).groups())
            rows = _other_copies(bus, project, lo, hi, skip=set(damaged))
            rows, kept = _last_resort(rows, quarantine / name)
            if rows.num_rows:
                write_segment(rows, sdir / name)
            expected = meta.get("rows") if meta and isinstance(meta.get("rows"), int) else None
            of = f" of the {expected} it held" if expected is not None else " (how many it held is unknown)"
            report.rebuilt.append(f"{name}: {rows.num_rows} rows{of}, from the journals it was made from")
            if kept:
                report.lost.append(f"{kept} rows of {name} exist only in the damaged segment, which still parses: "
                                   "kept as read, check them")
            if expected is not None and rows.num_rows < expected:
                report.lost.append(f"{expected - rows.num_rows} rows of {name} (no copy left); files are re-indexed "
                                   "from the workspace")
        for tmp in sdir.glob(".seg-*.tmp"):  # compaction killed before its rename
            tmp.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _drop_damaged_rollups(bus: Bus, report: RepairReport) -> None:
    # Rollups are a cross-project cache (bus.rollup): an unreadable one is dropped,
    # and the next scan builds a new one from the segments.
    for path in rollup.rollup_dir(bus.root / "index").glob("roll-*.parquet"):
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

    Returns what was found and done; ``str(report)`` and ``report.lines()`` say it in
    words. Raises ``BusFault`` only when the disk refuses a repair's own writes.
    """
    report = RepairReport(project)
    _fix_journals(bus, project, report)
    _fix_segments(bus, project, report)
    _drop_damaged_rollups(bus, report)
    if report.bad_records:
        report.compacted = max(bus.index.compact(project), 0)
    _remove_stale_temp(bus, project, report)
    reconcile(bus, project, report)
    return report
