"""The event index: per-writer journals (recent rows) + Parquet segments (compacted).

On disk, under ``<root>/index/``::

    journal/<project>/SEQ                      the project's next sequence number
    journal/<project>/<writer>.<nonce>.jsonl   rows appended by one process
    segments/<project>/seg-<lo>-<hi>.parquet   rows with lo <= seq < hi, sorted by seq
    segments/<project>/seg-<lo>-<hi>.sum       its sha256 and row count (``bus.segments``)
    sources/<project>/<lo>-<hi>.<journal>      journals already compacted, kept as the
                                               segments' source (rebuilt from on damage)

A segment is immutable once renamed into place. Compaction (under the project's lock)
writes a new segment, verified, then moves the journals it absorbed to ``sources/``;
merging replaces several segments by one. If a crash leaves both the old and the new
files behind, readers still see each row exactly once: a segment whose range lies
inside another's is ignored, and journal rows below the highest segment bound are
ignored.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import Callable, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from . import rollup
from .config import BusConfig
from .crashpoints import crashpoint
from .errors import BusFault
from .journal import ProjectJournal, read_counter, write_counter
from .schema import SCHEMA, decode_journal, empty_table
from .segments import SEG_RE, choose_segments, read_segment, segment_name, write_segment

_SEG_CACHE_MAX = 512
ROLLUP_AFTER_FILES = 32  # segment files outside the rollup before a scan builds a new one
log = logging.getLogger(__name__)


def _listdir(path: str | Path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _seq_at_least(table: pa.Table, low: int) -> pa.Table:
    return table if low <= 0 else table.filter(pc.greater_equal(table.column("seq"), low))


class _JournalCache:
    """Rows already parsed from one journal file, so re-reads only parse new bytes."""

    __slots__ = ("ino", "offset", "tables")

    def __init__(self, ino: int):
        self.ino, self.offset, self.tables = ino, 0, []


class Index:
    """Appends rows and reads consistent per-project snapshots of the event index."""

    def __init__(self, root: Path, config: BusConfig):
        self.config = config
        self.index_root = Path(root) / "index"
        self.journal_root = Path(root) / "index" / "journal"
        self.segment_root = Path(root) / "index" / "segments"
        self.source_root = Path(root) / "index" / "sources"
        self._journals: dict[str, ProjectJournal] = {}
        self._segments: dict[Path, pa.Table] = {}  # immutable files: cache by path
        self._journal_rows: dict[str, dict[Path, _JournalCache]] = {}  # project -> file -> rows
        # The caches are shared by every thread of the process (a driver polling while
        # another thread runs a project). Unguarded, two threads reading the same journal
        # each advanced its offset past the other's rows, and this process's view lost
        # those rows for good (measured: 34-120 of 401 rows seen with 6 reader threads).
        self._journal_lock = threading.Lock()
        self._journals_lock = threading.Lock()

    # -- writing ---------------------------------------------------------------------

    def append(self, project: str, build_row: Callable[[int], dict], undo: Callable[[], None] | None = None) -> dict:
        """Commit one row (see ``ProjectJournal.commit``, which says what it raises);
        compacts now and then. A compaction that fails (a full disk) does not fail the
        commit, whose row is written: it is tried again ``compact_rows`` rows later."""
        with self._journals_lock:  # one journal object per project, whichever thread asks first
            journal = self._journals.get(project)
            if journal is None:
                journal = self._journals[project] = ProjectJournal(
                    self.journal_root / project, self.config.fsync_index,
                    history=(self.segment_root / project, self.source_root / project))
        row = journal.commit(build_row, undo)
        if journal.rows_written >= self.config.compact_rows:
            try:
                self.compact(project, blocking=False)
            except BusFault as e:
                log.warning("compaction of %s postponed: %s", project, e)
                journal.rows_written = 0
        return row

    def compact(self, project: str, blocking: bool = True) -> int:
        """Move every journal row of ``project`` into a new, verified Parquet segment;
        the journals move to ``sources/`` (see ``bus.segments``).

        Holds the project's lock for the duration (writers of this project wait; a
        few ms per thousand rows). Returns the number of rows compacted, or -1 when
        ``blocking`` is false and another process holds the lock. Raises ``BusFault``
        when the segment cannot be written (a full disk: every row stays in its
        journal), ``CounterDamaged``.
        """
        jdir = self.journal_root / project
        if not (jdir / "SEQ").exists():
            return 0
        fd = os.open(jdir / "SEQ", os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                return -1
            next_seq, gen = read_counter(fd, jdir / "SEQ")
            sdir = self.segment_root / project
            sdir.mkdir(parents=True, exist_ok=True)
            _, covered = choose_segments(os.listdir(sdir))
            journals = sorted(p for p in jdir.iterdir() if p.suffix == ".jsonl")
            table = pa.concat_tables([empty_table()] + [self._decode(p.read_bytes(), p).table for p in journals])
            if table.num_rows:
                # Under the lock every journal row is whole, so a row at or past the
                # counter is one whose counter update a power loss lost: keep it.
                next_seq = max(next_seq, pc.max(table.column("seq")).as_py() + 1)
            table = table.filter(pc.field("seq") >= covered).sort_by("seq")
            try:
                if table.num_rows:
                    write_segment(table, sdir / segment_name(covered, next_seq))
                    crashpoint("mid_compact")
            except OSError as e:
                raise BusFault(f"could not compact the index of {project!r} ({e.strerror}); every row stays "
                               "in its journal: free space, and the next compaction tries again") from e
            # A new generation tells writers to start new journal files. It comes before
            # the journals move: a compaction killed while moving them would otherwise
            # leave a live writer appending to a moved file, its later rows out of sight.
            write_counter(fd, next_seq, gen + 1)
            try:
                source = self.source_root / project
                source.mkdir(parents=True, exist_ok=True)
                for p in journals:  # every row in them is now in a verified segment; they stay its source
                    os.rename(p, source / f"{covered:012d}-{next_seq:012d}.{p.name}")
                    crashpoint("mid_compact_move")
            except OSError as e:  # the rest stay where they are: readers ignore rows a segment holds
                log.warning("moving the compacted journals of %s aside postponed: %s", project, e)
            try:
                self._merge_segments(sdir)
            except (OSError, BusFault) as e:  # the segments stay as they are: merging only saves files
                log.warning("merging the segments of %s postponed: %s", project, e)
            return table.num_rows
        finally:
            os.close(fd)  # releases the flock

    def _merge_segments(self, sdir: Path) -> None:
        names = os.listdir(sdir)
        chosen, _ = choose_segments(names)
        if len(chosen) <= self.config.max_segments:
            return
        table = pa.concat_tables(self._read_segment(sdir / n) for _, _, n in chosen)
        write_segment(table, sdir / segment_name(chosen[0][0], chosen[-1][1]))
        for _, _, n in chosen:
            (sdir / n).unlink(missing_ok=True)
            (sdir / n).with_suffix(".sum").unlink(missing_ok=True)
            self._segments.pop(sdir / n, None)

    def next_seq_on_disk(self, project: str) -> int:
        """One past the highest sequence number anywhere in ``project``'s index
        (journals, kept sources, segments, quarantined segments): the lowest value its
        counter may hold. Reads every journal: for repair, not for the hot path."""
        highest = 0
        for folder in (self.journal_root / project, self.source_root / project):
            for name in _listdir(folder):
                if name.endswith(".jsonl"):
                    seqs = self._decode((folder / name).read_bytes(), folder / name).table.column("seq")
                    highest = max(highest, (pc.max(seqs).as_py() or 0) if len(seqs) else 0)
        names = _listdir(self.segment_root / project) + _listdir(self.index_root / "quarantine" / project)
        bounds = [int(m[2]) - 1 for n in names if (m := SEG_RE.match(n))]
        return max([highest] + bounds) + 1

    # -- reading ---------------------------------------------------------------------

    def projects(self) -> list[str]:
        names: set[str] = set()
        for d in (self.journal_root, self.segment_root):
            if d.is_dir():
                names.update(p.name for p in d.iterdir() if p.is_dir())
        return sorted(names)

    def next_seq(self, project: str) -> int:
        """The next sequence number of ``project``: every row below it is readable.
        Raises ``CounterDamaged``."""
        try:
            fd = os.open(self.journal_root / project / "SEQ", os.O_RDONLY)
        except FileNotFoundError:
            return 1
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # waits out a writer's critical section
            return read_counter(fd, self.journal_root / project / "SEQ")[0]
        finally:
            os.close(fd)

    def snapshot(self, project: str, since: int = 0) -> pa.Table:
        """All rows of ``project`` with ``since < seq < next_seq``, sorted by seq.

        A consistent prefix: every row numbered below the returned table's bound is in
        it, so ``since=<last seq seen>`` never skips a row that was still in flight.
        Raises ``CounterDamaged`` or ``SegmentDamaged`` (both say to run repair).
        """
        for _ in range(10):  # a merge may delete a segment between listing and reading
            next_seq = self.next_seq(project)  # raises CounterDamaged
            journal_part = self._read_journals(project)
            sdir = self.segment_root / project
            chosen, covered = choose_segments(_listdir(sdir))
            try:
                parts = [self._read_segment(sdir / n) for lo, hi, n in chosen if hi > since]
            except FileNotFoundError:
                continue
            parts.append(_seq_at_least(journal_part, covered))
            table = pa.concat_tables(parts)
            seq = table.column("seq")
            table = table.filter(pc.and_(pc.greater(seq, since), pc.less(seq, next_seq)))
            return table.sort_by("seq")
        raise RuntimeError(f"index of {project!r} kept changing while being read; try again")

    def scan(self, projects: Iterable[str] | None = None, columns: list[str] | None = None) -> pa.Table:
        """Rows of many projects at once, for cross-project queries.

        Not cached and not a per-project snapshot (a row whose predecessor is still in
        flight may show). Reads the newest rollup (``bus.rollup``), then per project
        the segment and journal rows above the rollup's bound; builds a new rollup
        when more than ``ROLLUP_AFTER_FILES`` segment files are not in it.
        """
        for _ in range(10):  # a rollup or segment replaced while we read it: read again
            try:
                return self._scan(None if projects is None else list(projects), columns)
            except FileNotFoundError:
                continue
        raise RuntimeError("the index kept changing while being scanned; try again")

    def _scan(self, projects: list[str] | None, columns: list[str] | None) -> pa.Table:
        names = self.projects() if projects is None else projects
        cols = columns or list(SCHEMA.names)
        read_cols = list(dict.fromkeys(cols + ["project", "seq"]))
        roll_path, covers = rollup.newest(self.index_root)
        files: list[str] = []
        file_project: dict[str, tuple[str, int]] = {}
        blobs: list[bytes] = []
        floor_of: dict[str, int] = {}  # lowest seq not in the rollup
        journal_floor_of: dict[str, int] = {}  # lowest seq in neither rollup nor segments
        for project in names:
            # Journals before segments (see the module doc): a journal compacted in
            # between shows up in the segment listing, and the floor drops its copy.
            jdir = f"{self.journal_root}/{project}"
            for name in _listdir(jdir):
                if name.endswith(".jsonl"):
                    try:
                        with open(f"{jdir}/{name}", "rb") as f:
                            data = f.read()
                    except FileNotFoundError:
                        continue
                    blobs.append(data[: data.rfind(b"\n") + 1])
            sdir = self.segment_root / project
            chosen, covered = choose_segments(_listdir(sdir))
            floor = covers.get(project, 0)
            floor_of[project], journal_floor_of[project] = floor, max(floor, covered)
            for _, hi, name in chosen:
                if hi > floor:
                    files.append(str(sdir / name))
                    file_project[files[-1]] = (project, covered)
        parts = []
        if roll_path is not None:
            wanted = pc.field("project").isin(names) if projects is not None else None
            parts.append(pq.read_table(roll_path, columns=read_cols, filters=wanted, schema=SCHEMA))
        if files:
            fresh = ds.dataset(files, schema=SCHEMA, format="parquet")
            build = len(files) > ROLLUP_AFTER_FILES
            try:
                seg_rows = fresh.to_table(columns=None if build else read_cols)
            except FileNotFoundError:
                raise
            except (pa.ArrowException, OSError):
                for f in files:  # which one: raises SegmentDamaged naming it
                    read_segment(Path(f))
                raise
            seg_rows = rollup.above(seg_rows, floor_of)
            parts.append(seg_rows.select(read_cols))
            if build:
                rollup.build(self.index_root, seg_rows, dict(file_project.values()))
        tail = self._decode(b"".join(blobs), "journals of the scan").table
        if tail.num_rows:
            parts.append(rollup.above(tail, journal_floor_of).select(read_cols))
        if not parts:
            return empty_table().select(cols)
        return pa.concat_tables(parts).select(cols)

    def _read_segment(self, path: Path) -> pa.Table:
        table = self._segments.get(path)
        if table is None:
            table = read_segment(path)  # checked against its sum once per process
            if len(self._segments) >= _SEG_CACHE_MAX:
                self._segments.pop(next(iter(self._segments)))
            self._segments[path] = table
        return table

    def _read_journals(self, project: str) -> pa.Table:
        with self._journal_lock:
            return self._read_journals_locked(project)

    def _read_journals_locked(self, project: str) -> pa.Table:
        jdir = self.journal_root / project
        try:
            paths = [jdir / n for n in os.listdir(jdir) if n.endswith(".jsonl")]
        except FileNotFoundError:
            return empty_table()
        known = self._journal_rows.setdefault(project, {})
        for gone in set(known) - set(paths):  # compacted away: its rows are in a segment now
            del known[gone]
        tables = []
        for path in paths:
            try:
                with open(path, "rb") as f:
                    ino = os.fstat(f.fileno()).st_ino
                    cache = known.get(path)
                    if cache is None or cache.ino != ino:
                        cache = known[path] = _JournalCache(ino)
                    f.seek(cache.offset)
                    new_rows, good, _ = self._decode(f.read(), path)
            except FileNotFoundError:
                known.pop(path, None)
                continue
            if new_rows.num_rows:
                cache.tables.append(new_rows)
                cache.offset += good
                if len(cache.tables) > 8:  # keep few, large chunks
                    cache.tables = [pa.concat_tables(cache.tables).combine_chunks()]
            tables.extend(cache.tables)
        return pa.concat_tables(tables) if tables else empty_table()

    def forget_segment(self, path: Path) -> None:
        """Drop this process's cached copy of segment ``path`` (repair replaced it)."""
        self._segments.pop(path, None)

    @staticmethod
    def _decode(data: bytes, where: object):
        decoded = decode_journal(data)
        for offset, length in decoded.bad:  # skipped; `aisci bus repair` moves them aside
            log.warning("%s: skipped %d bytes at offset %d that are not an index row", where, length, offset)
        return decoded

    def close(self) -> None:
        for j in self._journals.values():
            j.close()
        self._journals.clear()
