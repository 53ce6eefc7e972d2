"""Permission scopes: which paths a role may read and write.

A scope is data (two tuples of globs), so roles can be defined in YAML and shown to a
model verbatim. The defaults below follow the workspace convention of DESIGN.md:
``task/`` is read-only to every role; each specialist writes only its own folders
and its own narrative log.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .errors import BusRefusal
from .globs import compile_globs, first_match

# The folders every project workspace starts with (DESIGN.md, "The bus").
WORKSPACE_FOLDERS = ("task", "plan", "analysis", "code", "experiments", "logs", "submission", "report")


class Scope(BaseModel):
    """Read and write globs of one role (see ``bus.globs`` for the glob syntax)."""

    model_config = ConfigDict(frozen=True)

    read: tuple[str, ...] = Field(default=(), description="Globs of paths the role may read.")
    write: tuple[str, ...] = Field(default=(), description="Globs of paths the role may write or append to.")

    def can_read(self, path: str) -> bool:
        # Whatever a role may write it may also read back.
        return bool(compile_globs(self.read + self.write).match(path))

    def can_write(self, path: str) -> bool:
        return bool(compile_globs(self.write).match(path))

    def explain(self, role: str, op: str, path: str) -> str:
        """A refusal message for a model: the role, the path, the rule, what is allowed."""
        allowed = self.write if op == "write" else self.read + self.write
        return (
            f"role '{role}' may not {op} '{path}': no {op} glob of the role matches it. "
            f"Allowed {op} globs: {', '.join(allowed) or '(none)'}."
        )


_EVERYTHING_BUT_TASK = ("plan/**", "analysis/**", "code/**", "experiments/**", "logs/**", "submission/**", "report/**")

# Default roles. The actors package maps each specialist agent to one of these names.
DEFAULT_SCOPES: dict[str, Scope] = {
    # The framework itself: creates projects, imports task inputs, repairs the index.
    "system": Scope(read=("**",), write=("**",)),
    "orchestrator": Scope(read=("**",), write=("plan/**", "logs/orchestrator.md")),
    "analyst": Scope(
        read=("task/**", "plan/**", "analysis/**", "logs/**"),
        write=("analysis/**", "logs/analysis.md"),
    ),
    "planner": Scope(read=("**",), write=("plan/**", "logs/planning.md")),
    "coder": Scope(
        read=("task/**", "plan/**", "analysis/**", "code/**", "experiments/**", "logs/**"),
        write=("code/**", "logs/implementation.md"),
    ),
    "experimenter": Scope(
        read=("task/**", "plan/**", "analysis/**", "code/**", "experiments/**", "logs/**"),
        write=("experiments/**", "logs/experiments.md"),
    ),
    "debugger": Scope(read=("**",), write=("code/**", "logs/debug.md")),
    # report/ is the system's (the grade, the reproduction, the report): a writer wrote a
    # paperbench.json there that the report then failed on (the breaker); only its self-check.
    "writer": Scope(read=("**",), write=("report/selfcheck.json", "report/selfcheck/**", "submission/**",
                                         "logs/writing.md")),
    # Humans and dashboards: look at everything, change nothing.
    "viewer": Scope(read=("**",), write=()),
}


def scope_for(role: str, scopes: dict[str, Scope] | None = None) -> Scope:
    table = DEFAULT_SCOPES if scopes is None else scopes
    try:
        return table[role]
    except KeyError:
        raise BusRefusal(f"unknown role {role!r}: known roles are {', '.join(sorted(table))}") from None


__all__ = ["Scope", "DEFAULT_SCOPES", "WORKSPACE_FOLDERS", "scope_for", "first_match"]
