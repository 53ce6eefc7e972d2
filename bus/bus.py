"""The File-as-Bus: one root folder holding many project workspaces and their index.

    >>> from bus import Bus
    >>> bus = Bus("/tmp/aisci-doc")                            # doctest: +SKIP
    >>> coder = bus.create_project("iris").as_role("coder")    # doctest: +SKIP
    >>> coder.write("code/train.py", "print('hi')\\n", summary="first model")  # doctest: +SKIP

Layout under the root::

    projects/<project>/{task,plan,analysis,code,experiments,logs,submission,report}/
    objects/<project>/...     every version of every file (``bus.objects``)
    index/...                 the event index (``bus.index``)
    operator/<project>/...    the operator's settings of a project (``bus.operator``)

Everything an agent knows comes from here; see ``bus.view.RoleView`` for the scoped
operations and ``bus.reground`` for what an agent re-reads at each step.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from .config import BusConfig
from .errors import NotFound
from .index import Index
from .journal import writer_id
from .objects import VersionStore
from .operator import OperatorFiles
from .paths import check_project_name
from .schema import KIND_PROJECT
from .scopes import WORKSPACE_FOLDERS, Scope, scope_for


class Bus:
    """Entry point: projects, their scoped views, and the shared index."""

    def __init__(self, root: str | os.PathLike | None = None, config: BusConfig | None = None):
        if config is None:
            config = BusConfig() if root is None else BusConfig(root=Path(root))
        elif root is not None:
            config = config.model_copy(update={"root": Path(root)})
        self.config = config
        self.root = Path(config.root).expanduser().resolve()
        (self.root / "projects").mkdir(parents=True, exist_ok=True)
        self.index = Index(self.root, config)
        self.store = VersionStore(self.root)
        self.operator = OperatorFiles(self.root)  # settings no role or run can reach (bus.operator)

    def projects(self) -> list[str]:
        """Names of every project on this bus, sorted."""
        return sorted(p.name for p in (self.root / "projects").iterdir() if p.is_dir())

    def create_project(self, name: str, description: str = "") -> "Project":
        """Create a project workspace (idempotent: an existing project is returned as is)."""
        check_project_name(name)
        pdir = self.root / "projects" / name
        if not pdir.is_dir():
            for folder in WORKSPACE_FOLDERS:
                (pdir / folder).mkdir(parents=True, exist_ok=True)
            project = Project(self, name)
            project.as_role("system", "bus").record(KIND_PROJECT, description or f"created project {name}")
            return project
        return Project(self, name)

    def project(self, name: str) -> "Project":
        check_project_name(name)
        if not (self.root / "projects" / name).is_dir():
            raise NotFound(f"no project {name!r} under {self.root}: `aisci status` lists the projects there")
        return Project(self, name)


class Project:
    """One workspace on the bus. Scoped access goes through ``as_role``."""

    def __init__(self, bus: Bus, name: str):
        self.bus = bus
        self.name = name
        self.real = os.path.realpath(bus.root / "projects" / name)  # str: joined on every access
        self.dir = Path(self.real)

    def as_role(self, role: str, instance: str | None = None, scope: Scope | None = None):
        """A view of this project with ``role``'s permissions (default scopes in ``bus.scopes``)."""
        from .view import RoleView  # view imports this module

        return RoleView(self, role, instance or f"{role}@{writer_id()}", scope or scope_for(role))

    def put_object(self, data: bytes) -> str:
        """Keep ``data`` in the version store, outside the workspace; returns its sha256.
        For what the framework must read back exactly as it was recorded (a run request,
        a decision, a grade), whatever later happens to the files roles can write."""
        return self.bus.store.put(self.name, data)

    def read_object(self, digest: str) -> bytes:
        """The content stored under ``digest``. Raises ``NotFound`` (not stored) or
        ``BusFault`` (changed in place: the store is read-only by design)."""
        return self.bus.store.read(self.name, digest)

    def events(self, since: int = 0) -> pa.Table:
        """Every event with ``seq > since``, sorted by sequence number."""
        return self.bus.index.snapshot(self.name, since)

    def __repr__(self) -> str:
        return f"Project({self.name!r}, root={str(self.bus.root)!r})"
