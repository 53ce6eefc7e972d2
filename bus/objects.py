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
import os
import secrets
from pathlib import Path

from .crashpoints import crashpoint
from .errors import BusFault, NotFound
from .journal import writer_id


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class VersionStore:
    def __init__(self, root: Path):
        self.root = Path(root) / "objects"

    def path(self, project: str, digest: str) -> Path:
        return self.root / project / digest[:2] / digest

    def tmp_dir(self, project: str) -> Path:
        return self.root / project / "tmp"

    def stage(self, project: str, data: bytes) -> tuple[Path, str]:
        """Write ``data`` to a fresh temp file, fsynced and read-only; return it and its hash."""
        tmp_dir = self.tmp_dir(project)
        tmp = tmp_dir / f"{writer_id()}-{secrets.token_hex(6)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileNotFoundError:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        crashpoint("after_tmp")
        return tmp, sha256(data)

    def keep(self, project: str, staged: Path, digest: str) -> None:
        """Link a staged file into the store. If identical content is stored already,
        the staged name is pointed at that inode instead, so that every bus-written
        workspace file shares its inode with the store (``keep_existing`` relies on it)."""
        dest = self.path(project, digest)
        try:
            os.link(staged, dest)
        except FileNotFoundError:
            dest.parent.mkdir(parents=True, exist_ok=True)
            return self.keep(project, staged, digest)
        except FileExistsError:
            alias = staged.with_name(staged.name + ".alias")
            os.link(dest, alias)
            os.rename(alias, staged)
        crashpoint("after_link")

    def keep_existing(self, project: str, path: Path) -> tuple[str, int] | None:
        """Preserve a workspace file that is not in the store yet (an appended log, or a
        file written outside the bus) before it is replaced. Returns (hash, size)."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        if st.st_nlink > 1:  # a bus-written file: already linked into the store
            return None
        digest = sha256_file(path)
        dest = self.path(project, digest)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp, _ = self.stage(project, path.read_bytes())
            try:
                os.link(tmp, dest)
            except FileExistsError:
                pass
            os.unlink(tmp)
        return digest, st.st_size

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
