"""Bringing a task onto the bus: its public part only.

``description.md``, everything under ``prepared/public/``, and ``task.json`` (what
the task asks, derived from its config and sample submission: metric, direction, id
and target columns) are written into the project's ``task/`` folder (read-only to
every agent); the answers (``prepared/private/``) never are, and no run can see them
(``cluster.sandbox``).
"""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.mlebench.task import Task, shipped_tasks
from bus import Bus, Project

from .errors import UserError


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


def public_files(task: Task) -> dict[str, Path]:
    """What a task shows its agents: bus path (``task/...``) -> source file. Everything
    under ``prepared/public`` (folders too: images, audio) and the statement; links are
    not followed (task files come from the internet)."""
    files = {"task/description.md": task.description_path}
    for folder, dirs, names in os.walk(task.public_dir):  # os.walk does not follow links to folders
        dirs.sort()
        for name in sorted(names):
            src = Path(folder) / name
            if not src.is_symlink() and src.is_file() and not name.startswith("."):
                files[f"task/{src.relative_to(task.public_dir).as_posix()}"] = src
    return files


def import_task(bus: Bus, task: Task, project: str) -> Project:
    """Create ``project`` (if new) with the task's public files, streamed onto the bus
    (``RoleView.write_from``: large data is neither refused nor read into memory);
    idempotent, so that a resumed or half-imported project is completed, never redone."""
    proj = bus.create_project(project, f"task {task.id}")
    system = proj.as_role("system", "import")
    have = set(system.list("task"))
    for path, src in public_files(task).items():
        if path not in have:
            system.write_from(path, src, summary=f"task input: {path[len('task/'):]}")
    if "task/task.json" not in have:
        system.write("task/task.json", task.summary_json(), summary=f"what {task.id} asks: {task.metric.name} "
                     f"({'lower' if task.is_lower_better else 'higher'} is better), columns of sample_submission.csv")
    return proj
