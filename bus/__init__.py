"""The File-as-Bus: durable, permission-scoped project workspaces with an Arrow event index."""

from .bus import Bus, Project
from .config import BusConfig
from .errors import (
    BusError,
    BusFault,
    BusRefusal,
    CounterDamaged,
    FileTooLarge,
    InvalidPath,
    InvalidProjectName,
    LinkRefused,
    NotFound,
    ScopeViolation,
    SegmentDamaged,
)
from .scopes import DEFAULT_SCOPES, Scope
from .view import RoleView

__all__ = [
    "Bus", "BusConfig", "Project", "RoleView", "Scope", "DEFAULT_SCOPES",
    "BusError", "BusFault", "BusRefusal", "FileTooLarge", "InvalidPath",
    "InvalidProjectName", "NotFound", "ScopeViolation", "LinkRefused",
    "CounterDamaged", "SegmentDamaged",
]
