"""The event index: per-writer journals (recent rows) + Parquet segments (compacted).

On disk, under ``<root>/index/``::

    journal/<project>/SEQ                      the project's next sequence number
    journal/<project>/<writer>.<nonce>.jsonl   rows appended by one process
    segments/<project>/seg-<lo>-<hi>.parquet   rows with lo <= seq < hi, sorted by seq

A segment is immutable once renamed into place. Compaction (under the project's lock)
writes a new segment, then removes the journals it absorbed; merging replaces several
segments by one. If a crash leaves both the old and the new files behind, readers
still see each row exactly once: a segment whose range lies inside another's is
ignored, and journal rows below the highest segment bound are ignored.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
from pathlib import Path
from typing import Callable, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .config import BusConfig
from .crashpoints import crashpoint
from .journal import ProjectJournal, parse_journal, read_counter
from .schema import SCHEMA, empty_table, rows_to_table

_SEG_RE = re.compile(r"^seg-(\d{12})-(\d{12})\.parquet$")
_SEG_CACHE_MAX = 512


def _segment_name(lo: int, hi: int) -> str:
    return f"seg-{lo:012d}-{hi:012d}.parquet"


def choose_segments(names: Iterable[str]) -> tuple[list[tuple[int, int, str]], int]:
    """The segments that cover the index without overlap, and the highest bound covered."""
    segs = sorted(
        ((int(m[1]), int(m[2]), n) for n in names if (m := _SEG_RE.match(n))),
        key=lambda s: (s[0], -s[1]),
    )
    chosen, covered = [], 0
    for lo, hi, name in segs:
        if hi > covered:  # not contained in a segment already chosen
            chosen.append((lo, hi, name))
            covered = hi
    return chosen, covered


def _write_parquet_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


class _JournalCache:
    """Rows already parsed from one journal file, so re-reads only parse new bytes."""

    __slots__ = ("ino", "offset", "tables")

    def __init__(self, ino: int):
        self.ino, self.offset, self.tables = ino, 0, []


class Index:
    """Appends rows and reads consistent per-project snapshots of the event index."""

    def __init__(self, root: Path, config: BusConfig):
        self.config = config
        self.journal_root = Path(root) / "index" / "journal"
        self.segment_root = Path(root) / "index" / "segments"
        self._journals: dict[str, ProjectJournal] = {}
        self._segments: dict[Path, pa.Table] = {}  # immutable files: cache by path
        self._journal_rows: dict[Path, _JournalCache] = {}

    # -- writing ---------------------------------------------------------------------

    def append(self, project: str, build_row: Callable[[int], dict]) -> dict:
        """Commit one row (see ``ProjectJournal.commit``); compacts now and then."""
        journal = self._journals.get(project)
        if journal is None:
            journal = self._journals[project] = ProjectJournal(self.journal_root / project, self.config.fsync_index)
        row = journal.commit(build_row)
        if journal.rows_written >= self.config.compact_rows:
            self.compact(project, blocking=False)
        return row

    def compact(self, project: str, blocking: bool = True) -> int:
        """Move every journal row of ``project`` into a new Parquet segment.

        Holds the project's lock for the duration (writers of this project wait; a
        few ms per thousand rows). Returns the number of rows compacted, or -1 when
        ``blocking`` is false and another process holds the lock.
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
            next_seq = read_counter(fd)
            sdir = self.segment_root / project
            sdir.mkdir(parents=True, exist_ok=True)
            _, covered = choose_segments(os.listdir(sdir))
            journals = sorted(p for p in jdir.iterdir() if p.suffix == ".jsonl")
            rows = [r for p in journals for r in parse_journal(p.read_bytes())[0] if covered <= r["seq"] < next_seq]
            if rows:
                table = rows_to_table(sorted(rows, key=lambda r: r["seq"]))
                _write_parquet_atomic(table, sdir / _segment_name(covered, next_seq))
                crashpoint("mid_compact")
            for p in journals:  # every row in them is now in a segment
                p.unlink(missing_ok=True)
            self._merge_segments(sdir)
            return len(rows)
        finally:
            os.close(fd)  # releases the flock

    def _merge_segments(self, sdir: Path) -> None:
        names = os.listdir(sdir)
        chosen, _ = choose_segments(names)
        if len(chosen) <= self.config.max_segments:
            return
        table = pa.concat_tables(self._read_segment(sdir / n) for _, _, n in chosen)
        _write_parquet_atomic(table, sdir / _segment_name(chosen[0][0], chosen[-1][1]))
        for _, _, n in chosen:
            (sdir / n).unlink(missing_ok=True)
            self._segments.pop(sdir / n, None)

    # -- reading ---------------------------------------------------------------------

    def projects(self) -> list[str]:
        names: set[str] = set()
        for d in (self.journal_root, self.segment_root):
            if d.is_dir():
                names.update(p.name for p in d.iterdir() if p.is_dir())
        return sorted(names)

    def next_seq(self, project: str) -> int:
        """The next sequence number of ``project``: every row below it is readable."""
        try:
            fd = os.open(self.journal_root / project / "SEQ", os.O_RDONLY)
        except FileNotFoundError:
            return 1
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # waits out a writer's critical section
            return read_counter(fd)
        finally:
            os.close(fd)

    def snapshot(self, project: str, since: int = 0) -> pa.Table:
        """All rows of ``project`` with ``since < seq < next_seq``, sorted by seq.

        A consistent prefix: every row numbered below the returned table's bound is in
        it, so ``since=<last seq seen>`` never skips a row that was still in flight.
        """
        for _ in range(10):  # a merge may delete a segment between listing and reading
            next_seq = self.next_seq(project)
            journal_part = self._read_journals(project)
            sdir = self.segment_root / project
            chosen, covered = choose_segments(os.listdir(sdir)) if sdir.is_dir() else ([], 0)
            try:
                parts = [self._read_segment(sdir / n) for lo, hi, n in chosen if hi > since]
            except FileNotFoundError:
                continue
            parts.append(journal_part.filter(pc.field("seq") >= covered))
            table = pa.concat_tables(parts)
            table = table.filter((pc.field("seq") > since) & (pc.field("seq") < next_seq))
            return table.sort_by("seq")
        raise RuntimeError(f"index of {project!r} kept changing while being read; try again")

    def scan(self, projects: Iterable[str] | None = None, columns: list[str] | None = None) -> pa.Table:
        """Rows of many projects at once (cross-project queries). Compacted segments are
        read in one multi-threaded dataset scan; journal tails are added per project."""
        names = self.projects() if projects is None else list(projects)
        files, tails = [], []
        for project in names:
            journal_part = self._read_journals(project)  # journals before segments: see module doc
            sdir = self.segment_root / project
            chosen, covered = choose_segments(os.listdir(sdir)) if sdir.is_dir() else ([], 0)
            files.extend(str(sdir / n) for _, _, n in chosen)
            if journal_part.num_rows:
                tails.append(journal_part.filter(pc.field("seq") >= covered))
        cols = columns or list(SCHEMA.names)
        parts = [ds.dataset(files, schema=SCHEMA, format="parquet").to_table(columns=cols)] if files else []
        parts += [t.select(cols) for t in tails]
        return pa.concat_tables(parts) if parts else empty_table().select(cols)

    def _read_segment(self, path: Path) -> pa.Table:
        table = self._segments.get(path)
        if table is None:
            table = pq.read_table(path, schema=SCHEMA)
            if len(self._segments) >= _SEG_CACHE_MAX:
                self._segments.pop(next(iter(self._segments)))
            self._segments[path] = table
        return table

    def _read_journals(self, project: str) -> pa.Table:
        jdir = self.journal_root / project
        try:
            paths = [jdir / n for n in os.listdir(jdir) if n.endswith(".jsonl")]
        except FileNotFoundError:
            return empty_table()
        tables = []
        for path in paths:
            try:
                with open(path, "rb") as f:
                    ino = os.fstat(f.fileno()).st_ino
                    cache = self._journal_rows.get(path)
                    if cache is None or cache.ino != ino:
                        cache = self._journal_rows[path] = _JournalCache(ino)
                    f.seek(cache.offset)
                    rows, good = parse_journal(f.read())
            except FileNotFoundError:  # compacted away: its rows are in a segment now
                self._journal_rows.pop(path, None)
                continue
            if rows:
                cache.tables.append(rows_to_table(rows))
                cache.offset += good
                if len(cache.tables) > 8:  # keep few, large chunks
                    cache.tables = [pa.concat_tables(cache.tables).combine_chunks()]
            tables.extend(cache.tables)
        # Forget files that compaction removed.
        live = set(paths)
        for gone in [p for p in self._journal_rows if p.parent == jdir and p not in live]:
            del self._journal_rows[gone]
        return pa.concat_tables(tables) if tables else empty_table()

    def close(self) -> None:
        for j in self._journals.values():
            j.close()
        self._journals.clear()
