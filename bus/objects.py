"""The version store: every version of every file, content-addressed by sha256.

``<root>/objects/<project>/<h[:2]>/<h>`` holds the bytes whose sha256 is ``h``. A bus
write stages its content in ``objects/<project>/tmp/``, fsyncs it, hard-links it into
the store, then renames the same inode into the workspace. So the store costs one
``link()`` per write and no second copy of the data, and an overwritten workspace file
lives on in the store. Store files (and so bus-written workspace files) are made
read-only, because an editor writing in place would otherwise change a stored version
too; edits belong in new bus writes.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path

from .crashpoints import crashpoint
from .errors import BusFault, NotFound
from .journal import writer_id


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_LOG_XATTR = "user.aisci.log"


def mark_log(fd: int) -> None:
    """Mark a file as an append-only log (where the filesystem has user xattrs; where
    it has not, repair adopts a new log's torn first record instead of cutting it)."""
    try:
        os.setxattr(fd, _LOG_XATTR, b"1")
    except OSError:
        pass


def is_log(file: int | Path) -> bool:
    """True if ``file`` (a path or an open descriptor) carries the log mark."""
    try:
        return os.getxattr(file, _LOG_XATTR) == b"1"
    except OSError:
        return False


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_STAGED = itertools.count()  # per process: with the writer id, a unique temp name


class VersionStore:
    def __init__(self, root: Path):
        self.root = Path(root) / "objects"


    def path(self, project: str, digest: str) -> Path:
        return self.root / project / digest[:2] / digest

    def tmp_dir(self, project: str) -> Path:
        return self.root / project / "tmp"

    def stage(self, project: str, data: bytes) -> tuple[str, str]:
        """Write ``data`` to a fresh temp file, fsynced and read-only; return it and its hash.
        Raises ``OSError`` (a full disk...), leaving no temp file behind."""
        def fill(fd: int) -> str:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            return sha256(data)

        return self._staged(project, fill)

    def stage_stream(self, project: str, source: int) -> tuple[str, str, int]:
        """Copy the open file ``source`` (a descriptor) to a fresh temp file in blocks,
        hashing on the way (memory stays one block, whatever the size); returns the temp
        file, its hash and its size. Raises ``OSError``, leaving no temp file behind."""
        size = 0

        def fill(fd: int) -> str:
            nonlocal size
            h = hashlib.sha256()
            while block := os.read(source, 1 << 20):
                h.update(block)
                size += len(block)
                view = memoryview(block)
                while view:
                    view = view[os.write(fd, view) :]
            return h.hexdigest()

        tmp, digest = self._staged(project, fill)
        return tmp, digest, size

    def _staged(self, project: str, fill) -> tuple[str, str]:
        tmp = f"{self.root}/{project}/tmp/{writer_id()}-{next(_STAGED)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileNotFoundError:
            self.tmp_dir(project).mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            digest = fill(fd)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        crashpoint("after_tmp")
        return tmp, digest

    def keep(self, project: str, staged: str, digest: str) -> None:
        """Link a staged file into the store. If identical content is stored already,
        the staged name is pointed at that inode instead, so that every bus-written
        workspace file shares its inode with the store (``keep_existing`` relies on it)."""
        dest = f"{self.root}/{project}/{digest[:2]}/{digest}"
        try:
            os.link(staged, dest)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            return self.keep(project, staged, digest)
        except FileExistsError:
            alias = staged + ".alias"
            os.link(dest, alias)
            os.rename(alias, staged)
        crashpoint("after_link")

    def put(self, project: str, data: bytes) -> str:
        """Store ``data`` as a version (not placed in the workspace); returns its hash."""
        staged, digest = self.stage(project, data)
        self.keep(project, staged, digest)
        os.unlink(staged)
        return digest

    def keep_existing(self, project: str, path: str | Path) -> tuple[str, int]:
        """Store a workspace file that is not in the store (an appended log, or a file
        written outside the bus) before the bus replaces it. Returns (hash, size)."""
        with open(path, "rb") as f:
            data = f.read()
        return self.put(project, data), len(data)

    def read(self, project: str, digest: str) -> bytes:
        try:
            data = self.path(project, digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"version {digest[:12]} of project {project!r} is not in the store") from None
        if sha256(data) != digest:
            raise BusFault(
                f"stored version {digest[:12]} of {project!r} was modified in place; "
                "run `aisci bus repair` to record what is on disk"
            )
        return data
