"""Validation of project names and workspace paths, done before any I/O.

Every path an agent hands the bus is a *relative* POSIX path inside one project.
We refuse, with a message that says what to do instead:

* absolute paths, ``..`` components, empty components, backslashes and NUL bytes;
* names that are not valid UTF-8 (a surrogate-escaped ``str`` or undecodable bytes):
  they cannot be shown to a model or stored in the Arrow index faithfully;
* components longer than the filesystem allows.

What the path meets on disk (a symbolic link anywhere in it is refused, without a
window between check and use) is ``bus.nofollow``'s business.
"""

from __future__ import annotations

import re

from .errors import InvalidPath, InvalidProjectName

# Lower-case letters, digits, '.', '_' and '-'; starts with a letter or digit. Such
# names are safe as folder names on every filesystem a cluster mounts, and in URLs.
_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_MAX_COMPONENT_BYTES = 255
_MAX_PATH_BYTES = 1024


def check_project_name(name: object) -> str:
    """Return ``name`` if it is a valid project name, else raise ``InvalidProjectName``."""
    if not isinstance(name, str) or not _PROJECT_RE.match(name) or ".." in name:
        raise InvalidProjectName(
            f"invalid project name {name!r}: use 1-64 lower-case letters, digits, '.', '_' "
            "or '-', starting with a letter or digit (for example 'titanic-seed1')"
        )
    return name


def normalize(path: object) -> str:
    """Check a workspace-relative path and return it in canonical form (``a/b/c``).

    Accepts ``str`` or UTF-8 ``bytes``. Raises ``InvalidPath`` naming the problem.
    """
    if isinstance(path, bytes):
        try:
            path = path.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidPath(f"path {path!r} is not valid UTF-8: rename it with UTF-8 characters only") from None
    if not isinstance(path, str):
        raise InvalidPath(f"path must be a string, got {type(path).__name__}")
    try:
        encoded = path.encode("utf-8")  # fails on lone surrogates (os.fsdecode of bad bytes)
    except UnicodeEncodeError:
        raise InvalidPath(f"path {path!r} is not valid UTF-8: rename it with UTF-8 characters only") from None
    if not path or path.strip() == "":
        raise InvalidPath("empty path: give a path relative to the project, such as 'code/train.py'")
    if "\x00" in path:
        raise InvalidPath(f"path {path!r} contains a NUL byte")
    if "\\" in path:
        raise InvalidPath(f"path {path!r} contains a backslash: use '/' as the separator")
    if path.startswith("/") or path.startswith("~"):
        raise InvalidPath(
            f"absolute path {path!r} refused: paths are relative to the project root, such as 'code/train.py'"
        )
    if len(encoded) > _MAX_PATH_BYTES:
        raise InvalidPath(f"path is {len(encoded)} bytes long; the limit is {_MAX_PATH_BYTES}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts:
        raise InvalidPath(f"path {path!r} names the project root, not a file")
    for part in parts:
        if part == "..":
            raise InvalidPath(f"path {path!r} refused: '..' may not appear in a path")
        if len(part.encode("utf-8")) > _MAX_COMPONENT_BYTES:
            raise InvalidPath(f"path component {part[:40]!r}... is longer than {_MAX_COMPONENT_BYTES} bytes")
    return "/".join(parts)
