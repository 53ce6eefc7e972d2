"""A project seen through one role's scope: the only way agents touch the bus.

Every operation checks the path (``bus.paths``) and the scope (``bus.scopes``) before
any I/O. A refusal raises a ``BusRefusal`` subclass whose message names the role, the
path and the rule, and is recorded as a ``refused`` event, so the orchestrator can
see which agent keeps trying what.

Write order, chosen so that a SIGKILL at any point leaves a consistent bus (the
crash points of ``bus.crashpoints`` are at each arrow)::

    stage content in objects/tmp (fsync) -> link into the version store
    -> rename into the workspace -> index row

so an index row never claims a write that did not happen; a crash before the row
loses only that row, which ``aisci bus repair`` re-derives from the file.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from typing import TYPE_CHECKING, Any, Iterable

import pyarrow as pa

from . import crashpoints, reground
from .crashpoints import crashpoint
from .errors import BusRefusal, FileTooLarge, InvalidPath, NotFound, ScopeViolation
from .journal import writer_id
from .objects import mark_log, sha256
from .paths import Target, normalize, resolve_inside
from .schema import KIND_APPEND, KIND_RECOVERED, KIND_REFUSED, KIND_WRITE
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

        Returns the index row; its ``version`` (= ``seq``) names this version.
        """
        rel, target = self._checked(path, "write")
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        self._check_size(rel, len(data))
        if target.st is not None and stat.S_ISDIR(target.st.st_mode):
            self._refuse(InvalidPath(f"'{rel}' is a folder; write to a file inside it"), rel)
        store, project = self._bus.store, self.project.name
        staged, digest = store.stage(project, data)
        store.keep(project, staged, digest)
        if not target.parent_exists:
            os.makedirs(os.path.dirname(target.path), exist_ok=True)
        if target.st is not None and target.st.st_nlink == 1:
            # Not a bus-written file (those share their inode with the store): an
            # appended log or a file written outside the bus. Keep it before replacing it.
            kept = store.keep_existing(project, target.path)
            if kept[0] != digest:  # identical content (a run's output being indexed) loses nothing
                self.record(KIND_RECOVERED, "kept the previous content (it was not in the version store)",
                            path=rel, hash=kept[0], size=kept[1], version=None)
        os.rename(staged, target.path)
        crashpoint("after_rename")
        return self._commit(KIND_WRITE, path=rel, hash=digest, size=len(data), summary=summary,
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
        project's lock, so records of concurrent writers never interleave)."""
        rel, target = self._checked(path, "write")
        data = record.encode("utf-8") if isinstance(record, str) else bytes(record)
        self._check_size(rel, len(data))
        if not target.parent_exists:
            os.makedirs(os.path.dirname(target.path), exist_ok=True)
        dest = target.path

        def build(seq: int) -> dict:
            self._unshare(dest)
            fd = os.open(dest, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                offset = os.fstat(fd).st_size
                if offset == 0:
                    mark_log(fd)  # so that repair can tell a new log's torn first record from a file
                view = memoryview(data)
                if crashpoints.armed("mid_append"):  # tests: tear this record in half
                    view = view[os.write(fd, view[: len(view) // 2]) :]
                    crashpoints.crashpoint("mid_append")
                while view:  # one write() in practice; a loop in case the kernel splits it
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            return self._row(seq, KIND_APPEND, path=rel, version=seq, hash=sha256(data), size=len(data),
                             offset=offset, summary=summary)

        return self._bus.index.append(self.project.name, build)

    def record(self, kind: str, summary: str = "", *, path: str | None = None, **fields: Any) -> dict:
        """Record a non-file event (an LLM call, a dispatch, a decision, a metric...).

        ``fields`` are columns of ``bus.schema.SCHEMA``: ``metrics``, ``prompt_tokens``,
        ``completion_tokens``, ``derived_from``, ``hash``, ``size``, ``version``,
        ``subtask``, ``run``, ``attempt``, ``status``. A field may be a function of the
        row's own sequence number (an id made from it, such as a run's), called once
        inside the commit. Returns the row.
        """
        return self._commit(kind, path=path, summary=summary, **fields)

    # -- reading ---------------------------------------------------------------------

    def read_bytes(self, path: str) -> bytes:
        rel, target = self._checked(path, "read")
        if target.st is None or not stat.S_ISREG(target.st.st_mode):
            self._refuse(NotFound(f"'{rel}' does not exist; see the workspace map for what does"), rel)
        self._check_size(rel, target.st.st_size, reading=True)
        with open(target.path, "rb") as f:
            return f.read()

    def read(self, path: str) -> str:
        """A text file's content (undecodable bytes shown as U+FFFD)."""
        return self.read_bytes(path).decode("utf-8", errors="replace")

    def read_lines(self, path: str, start: int = 1, end: int | None = None) -> str:
        """Lines ``start``..``end`` (1-based, inclusive) of a text file."""
        lines = self.read(path).splitlines(keepends=True)
        return "".join(lines[max(start, 1) - 1 : end])

    def exists(self, path: str) -> bool:
        _, target = self._checked(path, "read")
        return target.st is not None and stat.S_ISREG(target.st.st_mode)

    def versions(self, path: str) -> pa.Table:
        """Every recorded version of ``path`` (write, append and recovered events)."""
        rel, _ = self._checked(path, "read")
        return reground.versions(self.project.events(), rel)

    def read_version(self, path: str, version: int) -> bytes:
        """The content of ``path`` as of ``version`` (a ``seq`` from ``versions``)."""
        rel, target = self._checked(path, "read")
        rows = reground.versions(self.project.events(), rel).filter(pa.compute.field("version") == version)
        if rows.num_rows == 0:
            self._refuse(NotFound(f"'{rel}' has no version {version}; see `versions('{rel}')`"), rel)
        row = rows.to_pylist()[0]
        if row["kind"] != KIND_APPEND:
            return self._bus.store.read(self.project.name, row["hash"])
        # An appended log: the version is the file's prefix up to the end of that record.
        end = row["offset"] + row["size"]
        with open(target.path, "rb") as f:
            data = f.read(end)
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
        """Paths of readable files under ``prefix``, from the index."""
        paths = self.workspace_map().column("path").to_pylist()
        prefix = prefix.strip("/")
        return [p for p in paths if not prefix or p == prefix or p.startswith(prefix + "/")]

    # -- internals -------------------------------------------------------------------

    def _checked(self, path: Any, op: str) -> tuple[str, Target]:
        """Normalize ``path``, check the scope for ``op``, refuse symlink escapes."""
        try:
            rel = normalize(path)
            allowed = self.scope.can_write(rel) if op == "write" else self.scope.can_read(rel)
            if not allowed:
                raise ScopeViolation(self.scope.explain(self.role, op, rel))
            return rel, resolve_inside(self.project.real, rel)
        except BusRefusal as e:
            self._refuse(e, path)

    def _check_size(self, rel: str, size: int, reading: bool = False) -> None:
        limit = self._bus.config.max_file_bytes
        if size > limit:
            how = "read it in parts with read_lines" if reading else "write large artifacts from the experiment itself"
            self._refuse(FileTooLarge(f"'{rel}' is {size} bytes, over the bus limit of {limit} "
                                      f"(BusConfig.max_file_bytes): {how}"), rel)

    def _refuse(self, error: BusRefusal, path: Any) -> None:
        shown = path if isinstance(path, str) else repr(path)
        try:
            shown.encode("utf-8")
        except UnicodeEncodeError:
            shown = shown.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        self._commit(KIND_REFUSED, path=shown[:1024], summary=f"[{error.rule}] {error}")
        raise error

    def _unshare(self, dest: str) -> None:
        """Before appending to a file the bus wrote whole (its inode is a stored
        version), give it an inode of its own so the stored version stays intact."""
        try:
            st = os.stat(dest, follow_symlinks=False)
        except FileNotFoundError:
            return
        if st.st_nlink > 1:
            folder, name = os.path.split(dest)
            tmp = os.path.join(folder, f".{name}.{writer_id()}.unshare")
            shutil.copyfile(dest, tmp)
            os.rename(tmp, dest)

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
                row[key] = list(value) if key == "derived_from" else value
        return row

    def __repr__(self) -> str:
        return f"RoleView({self.project.name!r}, role={self.role!r}, instance={self.instance!r})"
