"""How one start of a project ended: a small typed model, never a string to match.

``kind`` says what the driver does next: ``ended`` (grade it), ``paused`` (exit 75;
``aisci resume`` continues), ``moved`` (only the orchestrator's node is going away:
start it again elsewhere), ``failed`` (the orchestrator died or raised; the reason is
on the bus as a ``failed`` event, and a resume tries again).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from .state import RunRecord, State

__all__ = ["Outcome", "OutcomeKind"]

OutcomeKind = Literal["ended", "paused", "moved", "failed"]


class Outcome(BaseModel):
    kind: OutcomeKind
    reason: str = Field(description="Why, for people: the stop reason, the pause's cause, the error.")
    steps: int = 0
    tokens: int = 0
    best_run: RunRecord | None = None
    elapsed_s: float = Field(default=0.0, description="Active time of the project (pauses excluded), seconds.")
    node: str = Field(default="", description="The Ray node the orchestrator ran on (hex id).")
    tick_overhead_ms: list[float] = Field(default_factory=list, description="Per tick, time outside agents and runs.")

    @classmethod
    def of(cls, kind: OutcomeKind, reason: str, state: State | None = None, **extra) -> "Outcome":
        if state is None:
            return cls(kind=kind, reason=reason, **extra)
        return cls(kind=kind, reason=reason, steps=state.steps, tokens=state.tokens, best_run=state.best_run,
                   elapsed_s=state.elapsed_s, **extra)
