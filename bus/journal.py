"""Per-writer append-only journals and the per-project sequencer.

Why this shape (measurements in docs/index-mechanism.md): committing one row at a time
to Delta Lake or Lance costs a whole table commit (37 and 360 commits/s here) while an
fsynced JSON-line append costs about as much as the file write it describes. So each
process appends rows to *its own* journal file per project (no two writers ever share
a file, which keeps appends safe on NFS too), and rows are compacted into Parquet
segments later (``bus.index``).

Sequence numbers come from a tiny counter file per project, guarded by ``flock``. The
critical section is: read the counter, write the counter, write the row (plus, for log
appends, the log record). No I/O wait happens inside it (fsync comes after the
unlock), so writers of one project serialize for microseconds and writers of
different projects never touch the same lock.

Readers take the same lock *shared* only to read the counter K: every row numbered
below K is already in some journal (rows are written inside the lock), so a reader
that reads K first and the journals second sees a gap-free prefix and never moves a
cursor past a row that is still in flight.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import socket
import threading
from pathlib import Path
from typing import Callable

from .crashpoints import crashpoint
from .schema import encode_row

_COUNTER_WIDTH = 20  # ascii digits, so a person can `cat` the counter


def writer_id() -> str:
    """host-pid-nonce: unique per process, stable for its life, new after fork."""
    global _WRITER
    pid = os.getpid()
    if _WRITER is None or _WRITER[0] != pid:
        host = socket.gethostname().split(".")[0] or "host"
        _WRITER = (pid, f"{host}-{pid}-{secrets.token_hex(3)}")
    return _WRITER[1]


_WRITER: tuple[int, str] | None = None


def dead_writer(name: str) -> bool:
    """True if a file named after its writer (``[.]host-pid-nonce...``, as temp files
    are) belongs to a process of this host that is no longer alive."""
    parts = name.lstrip(".").split("-")
    host = socket.gethostname().split(".")[0]
    if len(parts) >= 3 and parts[0] == host and parts[1].isdigit():
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


def read_counter(fd: int) -> tuple[int, int]:
    """(next sequence number, compaction generation) from a project's SEQ file."""
    raw = os.pread(fd, 2 * _COUNTER_WIDTH, 0)
    seq, gen = raw[:_COUNTER_WIDTH], raw[_COUNTER_WIDTH:]
    return (int(seq) if seq.strip() else 1), (int(gen) if gen.strip() else 0)


def write_counter(fd: int, seq: int, gen: int) -> None:
    os.pwrite(fd, (str(seq).rjust(_COUNTER_WIDTH) + str(gen).rjust(_COUNTER_WIDTH)).encode(), 0)


class ProjectJournal:
    """This process's handle for appending index rows of one project."""

    def __init__(self, journal_dir: Path, fsync: bool):
        self.dir = journal_dir
        self.fsync = fsync
        self._thread_lock = threading.Lock()  # flock excludes processes; this, threads
        self._seq_fd: int | None = None
        self._fd: int | None = None
        self._path: Path | None = None
        self._gen = -1  # compaction generation our journal file belongs to
        self._pid = -1
        self.rows_written = 0  # rows this handle appended to its current journal file

    # -- the critical section --------------------------------------------------------

    def commit(self, build_row: Callable[[int], dict]) -> dict:
        """Allocate the next sequence number, build the row for it, append it.

        ``build_row(seq)`` runs inside the lock; it may do a little I/O that must be
        ordered with the sequence (appending a log record), never slow work.
        """
        with self._thread_lock:
            self._reopen_after_fork()
            seq_fd = self._seq_fd
            fcntl.flock(seq_fd, fcntl.LOCK_EX)
            try:
                seq, gen = read_counter(seq_fd)
                # The counter moves first: a crash after this leaves a gap, never a
                # duplicate sequence number.
                write_counter(seq_fd, seq + 1, gen)
                crashpoint("after_seq")
                row = build_row(seq)
                fd = self._journal_fd(gen)
                os.write(fd, encode_row(row))
                self.rows_written += 1
            finally:
                fcntl.flock(seq_fd, fcntl.LOCK_UN)
            crashpoint("after_row")
            if self.fsync:
                os.fsync(fd)
            return row

    # -- file handles ----------------------------------------------------------------

    def _reopen_after_fork(self) -> None:
        if self._pid == os.getpid():
            return
        # A forked child must not share its parent's journal file or descriptors.
        self._pid = os.getpid()
        self._fd = self._path = None
        self.dir.mkdir(parents=True, exist_ok=True)
        self._seq_fd = os.open(self.dir / "SEQ", os.O_RDWR | os.O_CREAT, 0o644)

    def _journal_fd(self, gen: int) -> int:
        """Our journal's descriptor. A new generation means a compaction removed every
        journal file, ours included, so we start a new file."""
        if self._fd is not None and gen == self._gen:
            return self._fd
        if self._fd is not None:
            os.close(self._fd)
        self._path = self.dir / f"{writer_id()}.{secrets.token_hex(2)}.jsonl"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._gen = gen
        self.rows_written = 0
        return self._fd

    def close(self) -> None:
        for fd in (self._fd, self._seq_fd):
            if fd is not None and self._pid == os.getpid():
                os.close(fd)
        self._fd = self._seq_fd = None
        self._pid = -1


def parse_journal(data: bytes) -> tuple[list[dict], int]:
    """Rows of a journal's bytes and the length of the well-formed prefix.

    Only complete, parseable lines count: a line torn by a crash (no newline, or cut
    JSON) ends the prefix. Such a tail can only be the row in flight at the crash.
    """
    rows: list[dict] = []
    good = 0
    start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            break
        try:
            rows.append(json.loads(data[start:end]))
        except ValueError:
            break
        good = start = end + 1
    return rows, good
