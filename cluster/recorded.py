"""What an event names by hash: a grade is read back from the version store by the hash
on its event (``graded``, ``paper_graded``), never from the file a role could rewrite."""

from __future__ import annotations

import json

import pyarrow.compute as pc

from bus import Project

__all__ = ["recorded_object"]


def recorded_object(project: Project, kind: str) -> dict | None:
    """The JSON object named by the hash on the project's last ``kind`` event, or None
    where there is none."""
    events = project.events()
    rows = events.filter(pc.equal(events.column("kind"), kind))
    if rows.num_rows == 0:
        return None
    digest = rows.column("hash")[-1].as_py()
    return json.loads(project.read_object(digest)) if digest else None
