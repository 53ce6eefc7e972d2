"""Repair's workspace side: make the index describe the files on disk, never
following a link.

Walks the project with ``os.fwalk`` (directory descriptors, links not followed) and
reaches every file relative to its folder's descriptor with ``O_NOFOLLOW``, like the
bus itself (``bus.nofollow``): a process that swaps a file for a link while repair
runs cannot make it hash, truncate or adopt a file elsewhere. Links, FIFOs and other
non-files are left alone and reported.

* a workspace file whose content the index does not describe (the write whose row
  was in flight, or a file changed outside the bus): kept in the version store and
  recorded as a ``recovered`` event, which makes it the file's latest version;
* a log whose size is past its last indexed record (a torn or unrecorded append):
  the unindexed tail is cut off (and kept in the version store), so that the
  append, when it is made again, is there once; the same for a new log's first
  record (logs carry an extended attribute that tells them from files written
  outside the bus).
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from typing import TYPE_CHECKING

from .journal import dead_writer
from .nofollow import kind_of
from .objects import is_log
from .reground import latest_files
from .schema import KIND_APPEND, KIND_RECOVERED

if TYPE_CHECKING:
    from .bus import Bus
    from .repair import RepairReport
    from .view import RoleView

__all__ = ["reconcile", "STALE_TMP_S"]

STALE_TMP_S = 3600  # a temp file this old is a dead writer's, whoever wrote it
_OPEN = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _lstat(name: str, dirfd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _open_same(name: str, dirfd: int, st: os.stat_result, flags: int) -> int | None:
    """``name`` opened without following links, if it is still the file ``st`` saw."""
    try:
        fd = os.open(name, flags | _OPEN, dir_fd=dirfd)
    except OSError:
        return None
    if not os.path.samestat(os.fstat(fd), st):
        os.close(fd)
        return None
    return fd


def _read(fd: int, start: int = 0) -> bytes:
    chunks = []
    while block := os.pread(fd, 1 << 20, start):
        chunks.append(block)
        start += len(block)
    return b"".join(chunks)


def _sha256(fd: int) -> str:
    h, start = hashlib.sha256(), 0
    while block := os.pread(fd, 1 << 20, start):
        h.update(block)
        start += len(block)
    return h.hexdigest()


def _cut_tail(bus: "Bus", project: str, system: "RoleView", rel: str, name: str, dirfd: int,
              st: os.stat_result, end: int) -> bool:
    """Truncate a log to the end of its last indexed record. The cut bytes (a torn
    record, or one whose row was in flight) are kept in the version store."""
    fd = _open_same(name, dirfd, st, os.O_RDWR)
    if fd is None:
        return False
    try:
        tail = _read(fd, end)
        digest = bus.store.put(project, tail)
        os.ftruncate(fd, end)
    finally:
        os.close(fd)
    system.record(KIND_RECOVERED, f"repair: cut {len(tail)} unindexed bytes (an append in flight) "
                  f"from the end of the log; they are kept as object {digest[:12]}",
                  path=rel, hash=digest, size=len(tail))
    return True


def _reconcile_file(bus: "Bus", project: str, system: "RoleView", rel: str, name: str, dirfd: int,
                    st: os.stat_result, known: dict | None, kind: str | None, report: "RepairReport") -> None:
    fd = _open_same(name, dirfd, st, os.O_RDONLY)
    if fd is None:
        return  # changed or removed since the listing
    try:
        size = os.fstat(fd).st_size
        if known is not None and kind == KIND_APPEND:
            if size > known["size"]:  # an append in flight: cut it, keep its bytes
                if _cut_tail(bus, project, system, rel, name, dirfd, st, known["size"]):
                    report.recovered.append(rel)
                return
            if size == known["size"]:
                return
            why = f"log is {size} bytes but its last indexed record ends at {known['size']}"
        elif known is not None and known["hash"] == _sha256(fd):
            return
        elif known is None and is_log(fd):  # a new log whose first record was in flight
            if _cut_tail(bus, project, system, rel, name, dirfd, st, 0):
                os.unlink(name, dir_fd=dirfd)  # it never had a committed record
                report.recovered.append(rel)
            return
        else:
            why = "file on disk that the index did not know" if known is None else "content differs from the index"
        if size > bus.config.max_file_bytes:
            report.missing.append(f"{rel} (too large to recover through the bus)")
            return
        # Adopt the file: its content becomes a stored version, and the workspace
        # file shares the stored inode like any bus-written file.
        staged, digest = bus.store.stage(project, _read(fd))
        bus.store.keep(project, staged, digest)
        os.rename(staged, name, dst_dir_fd=dirfd)
    finally:
        os.close(fd)
    system.record(KIND_RECOVERED, f"repair: {why}", path=rel, hash=digest, size=size, is_version=True)
    report.recovered.append(rel)


def _printable(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def reconcile(bus: "Bus", project: str, report: "RepairReport") -> None:
    """Make the index of ``project`` describe its files (see the module doc); adds what
    it did and found to ``report``."""
    proj = bus.project(project)
    system = proj.as_role("system", "repair")
    events = proj.events()
    latest = {r["path"]: r for r in latest_files(events).to_pylist()}
    kinds = dict(zip(events.column("seq").to_pylist(), events.column("kind").to_pylist()))
    on_disk: set[str] = set()
    now = time.time()
    for dirpath, dirnames, filenames, dirfd in os.fwalk(proj.real, follow_symlinks=False):
        here = os.path.relpath(dirpath, proj.real)
        prefix = "" if here == "." else here + "/"
        folders = []
        for name in dirnames:  # fwalk lists a link to a folder as a folder (and then skips it)
            st = _lstat(name, dirfd)
            if st is not None and stat.S_ISLNK(st.st_mode):
                report.left_alone.append(f"{_printable(prefix + name)} (a symbolic link: the bus never follows links)")
            elif st is not None and not name.startswith("."):
                folders.append(name)
        dirnames[:] = folders
        for name in filenames:
            st = _lstat(name, dirfd)
            if st is None:
                continue
            if name.startswith("."):  # an unshare copy of a dead writer (bus.nofollow)
                if name.endswith(".unshare") and (dead_writer(name) or now - st.st_mtime > STALE_TMP_S):
                    os.unlink(name, dir_fd=dirfd)
                    report.temp_removed += 1
                continue
            rel = prefix + name
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                report.unreadable_names.append(_printable(rel))
                continue
            if not stat.S_ISREG(st.st_mode):
                what = "the bus never follows links" if stat.S_ISLNK(st.st_mode) else "not a regular file"
                report.left_alone.append(f"{rel} (a {kind_of(st.st_mode)}: {what})")
                continue
            on_disk.add(rel)
            known = latest.get(rel)
            _reconcile_file(bus, project, system, rel, name, dirfd, st, known,
                            kinds.get(known["version"]) if known else None, report)
    report.missing += sorted(set(latest) - on_disk)
