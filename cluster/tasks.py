"""Bringing a task onto the bus: its public part only.

``description.md``, ``task.yaml`` and ``prepared/public/*`` are written into the
project's ``task/`` folder (read-only to every agent); ``prepared/private/`` (the
answers) never is, and experiments are run with it hidden (``cluster.sandbox``).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.grading.task import Task, shipped_tasks
from bus import Bus, Project

from .errors import UserError

DEFAULT_TASK = "digits"  # the shipped task `aisci run` works on when given none


def find_task(name_or_folder: str) -> Path:
    """A shipped task's folder by its name, or a task folder. Raises ``UserError``."""
    shipped = shipped_tasks()
    if name_or_folder in shipped:
        return shipped[name_or_folder]
    path = Path(name_or_folder).expanduser()
    if path.is_dir():
        return path.resolve()
    raise UserError(f"no task {name_or_folder!r}: give a task folder or a shipped task's name "
                    f"({', '.join(sorted(shipped))})")


def import_task(bus: Bus, task: Task, project: str) -> Project:
    """Create ``project`` (if new) with the task's public files; idempotent, so that a
    resumed project is left as it is."""
    proj = bus.create_project(project, f"task {task.id}")
    system = proj.as_role("system", "import")
    files = {"description.md": task.root / "description.md", "task.yaml": task.root / "task.yaml"}
    files.update({p.name: p for p in sorted(task.public_dir.iterdir()) if p.is_file()})
    for name, src in files.items():
        if not system.exists(f"task/{name}"):
            system.write(f"task/{name}", src.read_bytes(), summary=f"task input: {name}")
    return proj
