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

A row is written whole or not at all. On a full disk, one unchecked ``os.write`` tore
rows and reported them written, and every later row of that journal was glued to
the torn one and unreadable, even after space was freed (on a 256 KB tmpfs, 101 of
the 111 calls that returned a row were missing: tests/bus/test_full_disk.py). Now a
short or failed write cuts the row back off, the process starts a new journal file
(so nothing is ever written after a torn tail), and the commit raises ``BusFault``;
a counter that does not parse raises ``CounterDamaged``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import socket
import threading
from pathlib import Path
from typing import Callable

from .crashpoints import crashpoint
from .errors import BusFault, CounterDamaged
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


def _is_counter_field(field: bytes) -> bool:
    return field.lstrip(b" ").isdigit()  # bytes.isdigit: ASCII digits only, False when empty


def read_counter(fd: int, where: Path | str = "SEQ") -> tuple[int, int]:
    """(next sequence number, compaction generation) from a project's SEQ file (an
    empty file: a new project). Raises ``CounterDamaged`` if it does not hold two
    numbers (``where`` names the file in the message)."""
    raw = os.pread(fd, 2 * _COUNTER_WIDTH + 1, 0)
    if not raw:
        return 1, 0
    seq, gen = raw[:_COUNTER_WIDTH], raw[_COUNTER_WIDTH:]
    if len(raw) != 2 * _COUNTER_WIDTH or not _is_counter_field(seq) or not _is_counter_field(gen):
        project = Path(where).parent.name if str(where).endswith("SEQ") else str(where)
        raise CounterDamaged(
            f"the sequence counter {where} is damaged ({raw[:48]!r}): run `aisci bus repair {project}`, "
            "which sets it past the highest sequence number in the project's index"
        )
    return int(seq), int(gen)


def write_counter(fd: int, seq: int, gen: int) -> None:
    """Write the counter in place (40 bytes). Raises ``BusFault`` if it was not written whole."""
    data = (str(seq).rjust(_COUNTER_WIDTH) + str(gen).rjust(_COUNTER_WIDTH)).encode()
    try:
        n = os.pwrite(fd, data, 0)
    except OSError as e:
        raise BusFault(f"could not write a sequence counter ({e.strerror}); nothing was recorded") from e
    if n != len(data):
        raise BusFault(f"a sequence counter was written short ({n} of {len(data)} bytes): the disk is full? "
                       "free space, then run `aisci bus repair`")


class ProjectJournal:
    """This process's handle for appending index rows of one project."""

    def __init__(self, journal_dir: Path, fsync: bool, history: tuple[Path, ...] = ()):
        self.dir = journal_dir
        self.fsync = fsync
        self.history = history  # folders that hold rows once the journals are compacted
        self._seq_path = str(journal_dir / "SEQ")  # for messages (a Path per commit cost 10 us)
        self._thread_lock = threading.Lock()  # flock excludes processes; this, threads
        self._seq_fd: int | None = None
        self._fd: int | None = None
        self._path: Path | None = None
        self._gen = -1  # compaction generation our journal file belongs to
        self._pid = -1
        self._end = 0  # size of our journal file after its last whole row
        self.rows_written = 0  # rows this handle appended to its current journal file

    # -- the critical section --------------------------------------------------------

    def commit(self, build_row: Callable[[int], dict], undo: Callable[[], None] | None = None) -> dict:
        """Allocate the next sequence number, build the row for it, append it.

        ``build_row(seq)`` runs inside the lock; it may do a little I/O that must be
        ordered with the sequence (appending a log record), never slow work. If the row
        cannot be written, ``undo()`` (inside the lock) takes back what ``build_row``
        did. Returns the row. Raises ``CounterDamaged``, ``BusFault`` (the row was not
        written: the disk is full...; or it was, but fsync failed), or what
        ``build_row`` raises (then no row is written; its number stays unused).
        """
        with self._thread_lock:
            self._reopen_after_fork()
            seq_fd = self._seq_fd
            fcntl.flock(seq_fd, fcntl.LOCK_EX)
            try:
                seq, gen = read_counter(seq_fd, self._seq_path)
                if seq == 1 and self._has_rows():  # only a new project's first row pays for this check
                    raise CounterDamaged(f"the sequence counter {self.dir / 'SEQ'} is empty, but the project "
                                         f"has index rows: run `aisci bus repair {self.dir.name}`, which sets it "
                                         "past the highest sequence number (numbering from 1 would repeat them)")
                # The counter moves first: a crash after this leaves a gap, never a
                # duplicate sequence number.
                write_counter(seq_fd, seq + 1, gen)
                crashpoint("after_seq")
                row = build_row(seq)
                try:
                    fd = self._journal_fd(gen)
                    self._append_whole(fd, encode_row(row))
                except BaseException:
                    if undo is not None:
                        try:
                            undo()
                        except OSError:
                            pass  # what is left unindexed, repair cuts off
                    raise
                self.rows_written += 1
            finally:
                fcntl.flock(seq_fd, fcntl.LOCK_UN)
            crashpoint("after_row")
            if self.fsync:
                try:
                    os.fsync(fd)
                except OSError as e:
                    self._abandon()
                    raise BusFault(f"index row {seq} of {self.dir.name!r} was written but fsync failed "
                                   f"({e.strerror}): it may not survive a power loss") from e
            return row

    def _has_rows(self) -> bool:
        for folder in (self.dir,) + self.history:
            try:
                if any(n.endswith((".jsonl", ".parquet")) for n in os.listdir(folder)):
                    return True
            except FileNotFoundError:
                pass
        return False

    def _append_whole(self, fd: int, line: bytes) -> None:
        """Append ``line`` whole, or cut back what was written and raise ``BusFault``."""
        view, written = memoryview(line), 0
        try:
            while written < len(line):
                n = os.write(fd, view[written:])
                if n <= 0:
                    raise OSError(errno.ENOSPC, "write returned 0")
                written += n
        except OSError as e:
            if written:  # a torn row: we are this file's only writer, so cut it back off
                try:
                    os.ftruncate(fd, self._end)
                except OSError:
                    pass  # left as an unterminated tail, which readers ignore
            self._abandon()  # never write after a failed write: later rows start a new file
            full = e.errno in (errno.ENOSPC, errno.EDQUOT)
            raise BusFault(f"could not write an index row of {self.dir.name!r} "
                           f"({'the disk is full: free space under ' + str(self.dir) if full else e.strerror}); "
                           "nothing was recorded") from e
        self._end += written

    def _abandon(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None

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
        try:
            self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            self._fd = None
            raise BusFault(f"could not start a journal file in {self.dir} ({e.strerror}); nothing was recorded") from e
        self._end = 0
        self._gen = gen
        self.rows_written = 0
        return self._fd

    def close(self) -> None:
        for fd in (self._fd, self._seq_fd):
            if fd is not None and self._pid == os.getpid():
                os.close(fd)
        self._fd = self._seq_fd = None
        self._pid = -1
