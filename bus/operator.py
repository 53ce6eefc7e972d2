"""The operator's files: settings no role and no run can read or write.

``<root>/operator/<project>/<name>`` holds what the person running aisci decided for a
project (its job: the task folder, the sandbox and its limits, the model, where the
private answers live). It sits outside every project workspace, so no ``RoleView``
can reach it (views resolve paths inside their project only) and no run sees it (the
sandbox shows runs their project's folders, never the bus root). That is the rule of
docs/threat-model.md: a safeguard never reads its settings from a file an agent can
write, and no file an agent can read names where private answers live.

Writes are atomic (a temp file, fsync, rename): a crash leaves the old file or the new.
"""

from __future__ import annotations

from pathlib import Path

from .atomic import write_atomic
from .errors import NotFound
from .paths import check_project_name

__all__ = ["OperatorFiles"]


class OperatorFiles:
    """The operator's files of the projects of one bus root."""

    def __init__(self, root: Path):
        self.root = Path(root) / "operator"

    def path(self, project: str, name: str) -> Path:
        check_project_name(project)
        if "/" in name or name.startswith("."):
            raise ValueError(f"operator file name {name!r}: a plain file name")
        return self.root / project / name

    def write(self, project: str, name: str, data: bytes) -> None:
        path = self.path(project, name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, data, mode=0o600)

    def read(self, project: str, name: str) -> bytes:
        try:
            return self.path(project, name).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"project {project!r} has no operator file {name!r}") from None

    def exists(self, project: str, name: str) -> bool:
        return self.path(project, name).is_file()
