"""A project seen through one role's scope: the only way agents touch the bus.

Every operation checks the path (``bus.paths``) and the scope (``bus.scopes``) before
any I/O, and reaches the file without following a symbolic link (``bus.nofollow``:
the bus never follows links, so a link a run made cannot carry a write or a read past
the scope it was checked against). A refusal raises a ``BusRefusal`` subclass whose message names the role, the
path and the rule, and is recorded as a ``refused`` event, so the orchestrator can
see which agent keeps trying what.

Write order, chosen so that a SIGKILL at any point leaves a consistent bus (the
crash points of ``bus.crashpoints`` are at each arrow)::

    stage content in objects/tmp (fsync) -> link into the version store
    -> rename into the workspace (into its folder's descriptor) -> index row

so an index row never claims a write that did not happen; a crash before the row
loses only that row, which ``aisci bus repair`` re-derives from the file.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from typing import TYPE_CHECKING, Any, Iterable

import pyarrow as pa

from . import crashpoints, reground
from .crashpoints import crashpoint
from .errors import (
    BusFault,
    BusRefusal,
    FileTooLarge,
    InvalidPath,
    NotFound,
    ScopeViolation,
)
from .journal import writer_id
from .nofollow import Place, not_regular, read_all
from .objects import mark_log, sha256
from .paths import normalize
from .schema import (
    KIND_APPEND,
    KIND_RECOVERED,
    KIND_REFUSED,
    KIND_WRITE,
    MAX_TEXT_CHARS,
)
from .scopes import Scope

if TYPE_CHECKING:
    from .bus import Project


class RoleView:
    def __init__(self, project: "Project", role: str, instance: str, scope: Scope):
        self.project = project
        self.role = role
        self.instance = instance
        self.scope = scope
        self._bus = project.bus

    # -- writing ---------------------------------------------------------------------

    def write(
        self,
        path: str,
        content: str | bytes,
        summary: str = "",
        metrics: dict[str, float] | None = None,
        derived_from: Iterable[int] | None = None,
    ) -> dict:
        """Atomically replace ``path`` with ``content``; the old version stays retrievable.

        Returns the index row; its ``version`` (= ``seq``) names this version. Raises a
        ``BusRefusal`` (recorded as a ``refused`` event: scope, path shape, a symbolic
        link anywhere in the path, a folder or FIFO at the path, size) or ``BusFault``
        (the disk is full, or another I/O error: the workspace is unchanged).
        """
        with self._refusals(path):
            rel = self._checked(path, "write")
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            self._check_size(rel, len(data))
            return self._write(rel, lambda: self._bus.store.stage(self.project.name, data) + (len(data),),
                               summary, metrics, derived_from)

    def write_from(self, path: str, source: str | os.PathLike, summary: str = "") -> dict:
        """``write`` with the content of the file ``source``, streamed: for the framework's
        own imports (a task's data), which may be larger than an agent may write
        (``BusConfig.max_file_bytes`` is not applied) and are never read whole into
        memory. ``source`` must be a regular file, not a link. Raises as ``write``."""
        with self._refusals(path):
            rel = self._checked(path, "write")
            try:
                fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError as e:
                raise InvalidPath(f"cannot import {source}: {e.strerror} (a regular file is needed, not a link)") \
                    from None
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise not_regular(str(source), os.fstat(fd).st_mode)
                return self._write(rel, lambda: self._bus.store.stage_stream(self.project.name, fd), summary)
            finally:
                os.close(fd)

    def _write(self, rel: str, stage, summary: str, metrics: dict[str, float] | None = None,
               derived_from: Iterable[int] | None = None) -> dict:
        """The write protocol (see the module doc) for content ``stage()`` puts in the
        store's temp folder: returns (staged file, hash, size)."""
        with self._faults("write", rel), Place(self.project.real, rel) as where:
            st = where.lstat()
            if st is not None and not stat.S_ISREG(st.st_mode):
                raise not_regular(rel, st.st_mode)
            store, project = self._bus.store, self.project.name
            staged, digest, size = stage()
            try:
                store.keep(project, staged, digest)
                where.make_folders()
                # A file that does not share its inode with the store (an appended log,
                # or a file written outside the bus) is kept before it is replaced.
                old = where.read_unstored() if st is not None and st.st_nlink == 1 else None
                if old is not None:
                    kept = store.put(project, old)
                    if kept != digest:  # identical content (a run's output being indexed) loses nothing
                        self.record(KIND_RECOVERED, "kept the previous content (it was not in the version store)",
                                    path=rel, hash=kept, size=len(old), version=None)
                where.rename_here(staged)
            except BaseException:
                _remove(staged)  # the write did not happen: no staged file left behind
                raise
        crashpoint("after_rename")
        return self._commit(KIND_WRITE, path=rel, hash=digest, size=size, summary=summary,
                            metrics=metrics, derived_from=derived_from, is_version=True)

    def write_if_changed(self, path: str, content: str | bytes, summary: str = "") -> dict | None:
        """``write`` unless ``path`` already holds exactly ``content`` (then None): for
        files that are views of other state, rewritten each time it may have changed."""
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        if self.exists(path) and self.read_bytes(path) == data:
            return None
        return self.write(path, data, summary=summary)

    def append(self, path: str, record: str | bytes, summary: str = "") -> dict:
        """Append one record to a log file; atomic per record (one ``write`` under the
        project's lock, so records of concurrent writers never interleave).

        Returns the index row. Raises a ``BusRefusal`` (recorded) or ``BusFault`` (the
        disk is full: the record is cut back off and nothing is recorded).
        """
        with self._refusals(path):
            rel = self._checked(path, "write")
            data = record.encode("utf-8") if isinstance(record, str) else bytes(record)
            self._check_size(rel, len(data))
            with self._faults("append to", rel), Place(self.project.real, rel, create=True) as where:
                offset = -1

                def build(seq: int) -> dict:
                    nonlocal offset
                    # Checked in the open itself, under the lock: a refusal here leaves its
                    # sequence number unused (a gap, as a crash would).
                    fd, st = where.open_append()
                    try:
                        offset = st.st_size
                        if offset == 0:
                            mark_log(fd)  # so that repair can tell a new log's torn first record from a file
                        view = memoryview(data)
                        if crashpoints.armed("mid_append"):  # tests: tear this record in half
                            view = view[os.write(fd, view[: len(view) // 2]):]
                            crashpoints.crashpoint("mid_append")
                        try:
                            while view:  # one write() in practice; a loop in case the kernel splits it
                                view = view[os.write(fd, view):]
                        except OSError:
                            os.ftruncate(fd, offset)  # a torn record would corrupt the records after it
                            raise
                    finally:
                        os.close(fd)
                    return self._row(seq, KIND_APPEND, path=rel, version=seq, hash=sha256(data), size=len(data),
                                     offset=offset, summary=summary)

                def undo() -> None:  # the row could not be written: no record without its row
                    if offset >= 0:
                        where.truncate(offset)

                return self._bus.index.append(self.project.name, build, undo=undo)

    def record(self, kind: str, summary: str = "", *, path: str | None = None, **fields: Any) -> dict:
        """Record a non-file event (an LLM call, a dispatch, a decision, a metric...).

        ``fields`` are columns of ``bus.schema.SCHEMA``: ``metrics``, ``prompt_tokens``,
        ``completion_tokens``, ``derived_from``, ``hash``, ``size``, ``version``,
        ``subtask``, ``run``, ``attempt``, ``status``, ``model``. A field may be a function of the
        row's own sequence number (an id made from it, such as a run's), called once
        inside the commit. Returns the row.
        """
        return self._commit(kind, path=path, summary=summary, **fields)

    # -- reading ---------------------------------------------------------------------

    def read_bytes(self, path: str) -> bytes:
        """The content of a file. Raises ``NotFound``, ``LinkRefused`` (a symbolic link
        anywhere in the path), ``InvalidPath`` (a folder, a FIFO...), ``ScopeViolation``,
        ``FileTooLarge``: each recorded as a ``refused`` event."""
        with self._refusals(path):
            rel = self._checked(path, "read")
            with Place(self.project.real, rel) as where:
                fd, st = where.open_read()
                try:
                    self._check_size(rel, st.st_size, reading=True)
                    return read_all(fd, st.st_size)
                finally:
                    os.close(fd)

    def read(self, path: str) -> str:
        """A text file's content (undecodable bytes shown as U+FFFD); raises as ``read_bytes``."""
        return self.read_bytes(path).decode("utf-8", errors="replace")

    def read_lines(self, path: str, start: int = 1, end: int | None = None, max_bytes: int | None = None) -> str:
        """Lines ``start``..``end`` (1-based, inclusive) of a text file, read as a stream:
        a file of any size (a task's data) can be read in parts. Without ``end`` or
        ``max_bytes`` (stop after about so many bytes: a caller that shows at most so
        much) the rest of the file, so the size limit applies (``FileTooLarge``).
        Raises as ``read_bytes``."""
        with self._refusals(path):
            rel = self._checked(path, "read")
            with Place(self.project.real, rel) as where:
                fd, st = where.open_read()
            if end is None and max_bytes is None:
                self._check_size(rel, st.st_size, reading=True)
        with os.fdopen(fd, "rb") as f:
            out, used = [], 0
            for n, line in enumerate(f, 1):
                if end is not None and n > end:
                    break
                if n >= max(start, 1):
                    out.append(line)
                    used += len(line)
                    if max_bytes is not None and used >= max_bytes:
                        break
        return b"".join(out).decode("utf-8", errors="replace")

    def exists(self, path: str) -> bool:
        """True if ``path`` is a regular file. Raises ``LinkRefused`` for a path with a
        symbolic link in it (whatever it points at), ``ScopeViolation``."""
        with self._refusals(path):
            rel = self._checked(path, "read")
            with Place(self.project.real, rel) as where:
                st = where.lstat()
            return st is not None and stat.S_ISREG(st.st_mode)

    def versions(self, path: str) -> pa.Table:
        """Every recorded version of ``path`` (write, append and recovered events).
        Raises ``LinkRefused`` if the path on disk has a symbolic link in it."""
        with self._refusals(path):
            rel = self._checked(path, "read")
            with Place(self.project.real, rel) as where:
                where.lstat()
        return reground.versions(self.project.events(), rel)

    def read_version(self, path: str, version: int) -> bytes:
        """The content of ``path`` as of ``version`` (a ``seq`` from ``versions``).

        Raises ``NotFound`` (no such version; a log rewritten since), ``LinkRefused``,
        ``BusFault`` (a stored version changed in place).
        """
        with self._refusals(path):
            rel = self._checked(path, "read")
            with Place(self.project.real, rel) as where:
                where.lstat()
                rows = reground.versions(self.project.events(), rel).filter(pa.compute.field("version") == version)
                if rows.num_rows == 0:
                    raise NotFound(f"'{rel}' has no version {version}; see `versions('{rel}')`")
                row = rows.to_pylist()[0]
                if row["kind"] != KIND_APPEND:
                    return self._bus.store.read(self.project.name, row["hash"])
                # An appended log: the version is the file's prefix up to the end of that record.
                end = row["offset"] + row["size"]
                fd, st = where.open_read()
                try:
                    data = read_all(fd, st.st_size, limit=end)
                finally:
                    os.close(fd)
        if sha256(data[row["offset"] :]) != row["hash"]:
            raise NotFound(f"'{rel}' was rewritten after version {version}; its earlier content is in "
                           "the version store under the 'recovered' event that preceded the rewrite")
        return data

    # -- re-grounding ----------------------------------------------------------------

    def workspace_map(self) -> pa.Table:
        """Every file this role may read: path, version, size, author, time, summary."""
        return reground.workspace_map(self.project.events(), self.scope)

    def changes_since(self, seq: int) -> pa.Table:
        """Events after ``seq`` that this role may see (its readable files, and pathless events)."""
        return reground.changes(self.project.events(since=seq), self.scope)

    def list(self, prefix: str = "") -> list[str]:
        """Paths of readable files under ``prefix``, from the index. Raises
        ``LinkRefused`` if ``prefix`` on disk has a symbolic link in it."""
        prefix = prefix.strip("/")
        if prefix:
            with self._refusals(prefix):
                prefix = normalize(prefix)
                with Place(self.project.real, prefix) as where:
                    where.lstat()
        paths = self.workspace_map().column("path").to_pylist()
        return [p for p in paths if not prefix or p == prefix or p.startswith(prefix + "/")]

    # -- internals -------------------------------------------------------------------

    def _checked(self, path: Any, op: str) -> str:
        """``path`` normalized, once the role's scope allows ``op`` on it."""
        rel = normalize(path)
        allowed = self.scope.can_write(rel) if op == "write" else self.scope.can_read(rel)
        if not allowed:
            raise ScopeViolation(self.scope.explain(self.role, op, rel))
        return rel

    def _check_size(self, rel: str, size: int, reading: bool = False) -> None:
        limit = self._bus.config.max_file_bytes
        if size > limit:
            how = "read it in parts with read_lines" if reading else "write large artifacts from the experiment itself"
            raise FileTooLarge(f"'{rel}' is {size} bytes, over the bus limit of {limit} "
                               f"(BusConfig.max_file_bytes): {how}")

    def _refusals(self, path: Any) -> "_Refusals":
        """A context that records every refusal raised inside it as a ``refused`` event,
        then lets it go on."""
        return _Refusals(self, path)

    def _faults(self, op: str, rel: str) -> "_Faults":
        """A context that turns an ``OSError`` of the bus's own I/O into a ``BusFault``
        that says what to do (the caller is never told a failed write happened)."""
        return _Faults(self, op, rel)

    def _record_refusal(self, error: BusRefusal, path: Any) -> None:
        shown = path if isinstance(path, str) else repr(path)
        try:
            shown.encode("utf-8")
        except UnicodeEncodeError:
            shown = shown.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        self._commit(KIND_REFUSED, path=shown[:1024], summary=f"[{error.rule}] {error}")

    def _commit(self, kind: str, is_version: bool = False, **fields: Any) -> dict:
        return self._bus.index.append(
            self.project.name, lambda seq: self._row(seq, kind, **({"version": seq} if is_version else {}), **fields)
        )

    def _row(self, seq: int, kind: str, **fields: Any) -> dict:
        row = {"project": self.project.name, "seq": seq, "time": time.time_ns() // 1000, "role": self.role,
               "instance": self.instance, "kind": kind, "writer": writer_id()}
        for key, value in fields.items():
            if callable(value):
                value = value(seq)
            if value is not None and value != "":
                if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
                    value = value[:MAX_TEXT_CHARS - 1] + "\u2026"
                row[key] = list(value) if key == "derived_from" else value
        return row

    def __repr__(self) -> str:
        return f"RoleView({self.project.name!r}, role={self.role!r}, instance={self.instance!r})"


# Plain classes rather than @contextmanager generators: these wrap every operation,
# and a generator-based context costs several times as much to enter and leave.
class _Refusals:
    __slots__ = ("view", "path")

    def __init__(self, view: RoleView, path: Any):
        self.view, self.path = view, path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, tb) -> bool:
        if isinstance(error, BusRefusal):
            self.view._record_refusal(error, self.path)
        return False


class _Faults:
    __slots__ = ("view", "op", "rel")

    def __init__(self, view: RoleView, op: str, rel: str):
        self.view, self.op, self.rel = view, op, rel

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, tb) -> bool:
        if isinstance(error, OSError):
            full = error.errno in (errno.ENOSPC, errno.EDQUOT)
            what = f"the disk is full: free space under {self.view._bus.root} and retry" if full else \
                f"{error.strerror or error}"
            raise BusFault(f"could not {self.op} '{self.rel}' in project {self.view.project.name!r} ({what}); "
                           "nothing was recorded") from error
        return False


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
