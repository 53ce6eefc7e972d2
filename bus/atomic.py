"""Replacing a small file whole: readers see the old content or the new, never a mix.

A temp file in the same folder, fsynced, then renamed into place; on any failure (a
full disk) no temp file is left behind. Used for the files the bus keeps beside its
data (segment checksums, the operator's job); the workspace's own writes go through
the version store instead (``bus.view``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data``. Raises ``OSError`` (the old file is left as it was)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
