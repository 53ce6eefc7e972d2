"""Files below a project folder, reached without ever following a symbolic link.

Experiment runs are hostile code that can write parts of a project folder, links
included, and scopes are checked on the path as written. A bus that followed links
let a link decide where its I/O landed: a run that replaced
``experiments/<id>/output.log`` by a link to ``../../task/description.md`` had the
framework's appends land in the task file every agent reads; ``result.json`` linked
to ``../../code/train.py`` had a system write overwrite the code; a link under
``experiments/`` let the experimenter's copy land in ``submission/`` and the coder
read ``submission/``. So the bus refuses any path with a link in it (``LinkRefused``).

Checking first (``lstat``) and opening by name afterwards can be raced by a process
that swaps a folder or a file for a link in between, so the check *is* the open:

* folders are walked from the project folder one component at a time, each opened
  ``O_DIRECTORY | O_NOFOLLOW`` relative to the one before (``dir_fd``);
* the last component is opened relative to its folder with ``O_NOFOLLOW``; reads
  add ``O_NONBLOCK`` and check with ``fstat`` that it is a regular file, so a FIFO
  a run left there never blocks the bus;
* a write renames its staged file into the folder's descriptor (``dst_dir_fd``).

A link anywhere in the path makes the open itself fail (``ELOOP``/``ENOTDIR``); a
folder moved after it was opened is still the folder that was checked.

Cost, measured against the lstat-then-open code it replaced (median per operation,
1,200 operations per run, alternating runs on the shared 2-core machine, index fsync
off so that only the bus's own work counts): a read 13.0 -> 9.5-11 us (one
``os.read`` instead of a buffered file), ``exists`` 6.0 -> 7.0-7.5 us, an append
38 -> 44-46 us, a write unchanged (its fsync dominates). bus_bench figures before
and after: docs/bus-design.md.
"""

from __future__ import annotations

import errno
import os
import stat

from .errors import InvalidPath, LinkRefused, NotFound
from .journal import writer_id

__all__ = ["Place", "kind_of", "not_regular", "read_all"]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def kind_of(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words (for messages)."""
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "folder"), (stat.S_ISLNK, "symbolic link"),
                       (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "device"


def _link_refused(rel: str, where: str) -> LinkRefused:
    return LinkRefused(
        f"'{rel}' refused: '{where}' is a symlink, and the bus never follows links "
        "(one made by a run could point at any file, in the project or outside it, past the "
        "role's scope). Use the real path, or remove the link."
    )


def not_regular(rel: str, mode: int) -> InvalidPath:
    """The refusal for a path that is not a regular file (a folder, a FIFO...)."""
    kind = kind_of(mode)
    if kind == "folder":
        return InvalidPath(f"'{rel}' is a folder; read or write a file inside it")
    return InvalidPath(f"'{rel}' is a {kind}, not a regular file: the bus reads and writes regular files only")


def read_all(fd: int, size: int, limit: int | None = None) -> bytes:
    """Everything from ``fd``'s offset to its end (``size``: the expected length, so
    that a regular file takes one ``read``), at most ``limit`` bytes when given."""
    want = size + 1 if limit is None else min(size + 1, limit)
    chunks = []
    while want > 0 and (block := os.read(fd, want)):
        chunks.append(block)
        want = 1 << 20 if limit is None else limit - sum(map(len, chunks))
    return b"".join(chunks)


class Place:
    """Where a checked, normalized path ``rel`` lands: its folder, opened without
    following links (``fd``; None while a folder on the way does not exist), and the
    last component's ``name``. A context manager: leaving it closes the folder.

    Raises ``LinkRefused`` if a folder on the way is a link, ``InvalidPath`` if one is
    a file (when ``create``: the path cannot be made).

        >>> with Place(project.real, "code/train.py") as where:   # doctest: +SKIP
        ...     fd, st = where.open_read()
    """

    def __init__(self, project_dir: str, rel: str, create: bool = False):
        self.project_dir, self.rel = project_dir, rel
        self.folders = rel.split("/")[:-1]
        self.name = rel.rsplit("/", 1)[-1]
        self.fd: int | None = None
        self.fd = self._walk(create)

    def __enter__(self) -> "Place":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    # -- folders ---------------------------------------------------------------------

    def _walk(self, create: bool) -> int | None:
        try:
            fd = os.open(self.project_dir, _DIR)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _link_refused(self.rel, self.project_dir) from None
            raise
        try:
            for i, part in enumerate(self.folders):
                try:
                    nxt = os.open(part, _DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass  # made meanwhile; if it is a link, the open below refuses it
                    nxt = self._open_folder(fd, i, create)
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    nxt = self._open_folder(fd, i, create)
                    if nxt is None:
                        os.close(fd)
                        return None
                os.close(fd)
                fd = nxt
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _open_folder(self, fd: int, i: int, create: bool) -> int | None:
        """Open folder ``i`` again after a failed open, and say why it failed: a link
        (refused), a file in the way (missing, or refused when creating)."""
        where = "/".join(self.folders[: i + 1])
        try:
            return os.open(self.folders[i], _DIR, dir_fd=fd)
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
        try:
            st = os.stat(self.folders[i], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is None or stat.S_ISLNK(st.st_mode) or stat.S_ISDIR(st.st_mode):  # a dir here: swapped meanwhile
            raise _link_refused(self.rel, where)
        if create:
            raise InvalidPath(f"'{where}' is a {kind_of(st.st_mode)}, so '{self.rel}' cannot be made inside it")
        return None

    def make_folders(self) -> None:
        """Create the missing folders on the way (as real folders; a link refused)."""
        if self.fd is None:
            self.fd = self._walk(create=True)

    # -- the last component ----------------------------------------------------------

    def lstat(self) -> os.stat_result | None:
        """The last component's ``lstat`` (None if absent). Raises ``LinkRefused``."""
        if self.fd is None:
            return None
        try:
            st = os.stat(self.name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            raise _link_refused(self.rel, self.rel)
        return st

    def open_read(self) -> tuple[int, os.stat_result]:
        """Open the file for reading: its descriptor (the caller closes it) and ``fstat``.

        Raises ``NotFound`` (absent), ``LinkRefused``, ``InvalidPath`` (not a regular file).
        """
        if self.fd is None:
            raise NotFound(f"'{self.rel}' does not exist; see the workspace map for what does")
        try:
            fd = os.open(self.name, _READ, dir_fd=self.fd)
        except FileNotFoundError:
            raise NotFound(f"'{self.rel}' does not exist; see the workspace map for what does") from None
        except OSError as e:
            raise self._explain(e) from None
        return fd, self._regular(fd)

    def read_unstored(self) -> bytes | None:
        """The content of the file here if it is a regular file with one link (not a
        version the bus stored: an appended log, or a file written outside the bus);
        else None."""
        try:
            fd, st = self.open_read()
        except (NotFound, InvalidPath):
            return None  # absent, or not a file: nothing to keep (a link is refused earlier)
        try:
            return read_all(fd, st.st_size) if st.st_nlink == 1 else None
        finally:
            os.close(fd)

    def open_append(self) -> tuple[int, os.stat_result]:
        """Open (create) the file for appending: its descriptor (the caller closes it)
        and ``fstat``. A file that shares its inode with the version store is first
        given an inode of its own, so that the stored version stays intact.

        Raises ``LinkRefused``, ``InvalidPath`` (a folder, a FIFO...).
        """
        st = self.lstat()
        if st is not None and stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            self._unshare()
        try:
            fd = os.open(self.name, _APPEND, 0o644, dir_fd=self.fd)
        except OSError as e:
            raise self._explain(e) from None
        return fd, self._regular(fd)

    def truncate(self, size: int) -> None:
        """Cut the file back to ``size`` bytes (an append that could not be recorded)."""
        fd = os.open(self.name, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.fd)
        try:
            self._regular(fd)
            os.ftruncate(fd, size)
        finally:
            os.close(fd)

    def rename_here(self, src: str) -> None:
        """Rename ``src`` (an absolute path outside the project) over the last component."""
        os.rename(src, self.name, dst_dir_fd=self.fd)

    def _unshare(self) -> None:
        fd, _ = self.open_read()
        tmp = f".{writer_id()}.{self.name[:100]}.unshare"  # repair removes it if this process dies
        try:
            out = os.open(tmp, _NEW, 0o644, dir_fd=self.fd)
        except FileExistsError:  # left by a killed attempt of this very process id
            os.unlink(tmp, dir_fd=self.fd)
            out = os.open(tmp, _NEW, 0o644, dir_fd=self.fd)
        try:
            while block := os.read(fd, 1 << 20):
                view = memoryview(block)
                while view:
                    view = view[os.write(out, view):]
        finally:
            os.close(fd)
            os.close(out)
        os.rename(tmp, self.name, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def _regular(self, fd: int) -> os.stat_result:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise not_regular(self.rel, st.st_mode)
        return st

    def _explain(self, e: OSError) -> Exception:
        if e.errno == errno.ELOOP:
            return _link_refused(self.rel, self.rel)
        if e.errno == errno.EISDIR:
            return not_regular(self.rel, stat.S_IFDIR)
        if e.errno == errno.ENXIO:  # a FIFO with no reader, or a socket
            try:
                return not_regular(self.rel, os.stat(self.name, dir_fd=self.fd, follow_symlinks=False).st_mode)
            except OSError:
                return not_regular(self.rel, stat.S_IFIFO)
        return e
