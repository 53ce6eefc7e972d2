"""What the orchestrator does next: a policy reads the state and returns a decision.

``State`` is re-derived from the bus at every tick (never kept in memory), and a
``Decision`` is a list of subtasks to dispatch, or a stop, always with a reason that
goes into plan/decisions.md. ``BaselinePolicy`` is the built-in, deterministic one:
understand -> implement -> experiment -> submit, each phase retried once.
"""

from __future__ import annotations

import json
from typing import Protocol

from pydantic import BaseModel, Field

from .agent import Subtask
from .state import State

__all__ = ["BaselinePolicy", "Decision", "Policy", "State"]


class Decision(BaseModel):
    subtasks: list[Subtask] = Field(default_factory=list)
    stop: bool = False
    reason: str


class Policy(Protocol):
    def decide(self, state: State) -> Decision: ...

    def roadmap(self, state: State) -> list[dict]: ...


PHASES = (
    ("analyse", "analyst", "Understand the task and its data; write what you find into analysis/."),
    ("implement", "coder", "Write code/train.py: a complete pipeline that scores a model by cross-validation, "
                           "predicts test.csv into submission.csv and writes metrics.json (cv_score)."),
    ("experiment", "experimenter", "Launch experiments that compare models and hyperparameters."),
    ("submit", "writer", "Put the predictions of the best experiment into submission/submission.csv."),
)


class BaselinePolicy:
    """The phases in order; a failed phase is retried once; the target skips to submit."""

    def decide(self, state: State) -> Decision:
        for phase, role, goal in PHASES:
            attempts = sorted(s for s in state.completed if s.startswith(f"{phase}-"))
            if any(state.completed[s] for s in attempts):
                continue
            if phase == "experiment" and state.target_reached():
                continue
            if len(attempts) >= 2:
                return Decision(stop=True, reason=f"phase {phase} failed twice: stopping")
            params: dict = {"kind": state.config.task_kind, "data": state.config.data_kind}
            if phase == "submit":
                best = state.best_run
                if best is None:
                    return Decision(stop=True, reason="no experiment produced a score: nothing to submit")
                params["best"] = best.id
            sid = f"{phase}-{len(attempts) + 1}"  # the same id as an in-flight attempt: idempotent re-dispatch
            context = f"BASELINE: {json.dumps(params)}"
            if not state.config.bus_memory and phase == "submit":
                context += f"\nThe best run is experiments/{params['best']}/ (cv {state.best_run.cv_score:.5f})."
            why = f"{phase}: {'retry' if attempts else 'next phase'}" + (
                f" (best run so far {params['best']})" if phase == "submit" else "")
            return Decision(subtasks=[Subtask(id=sid, role=role, goal=goal, context=context)], reason=why)
        return Decision(stop=True, reason="every phase is done")

    def roadmap(self, state: State) -> list[dict]:
        out = []
        for phase, role, goal in PHASES:
            attempts = [s for s in state.completed if s.startswith(f"{phase}-")]
            status = "done" if any(state.completed[s] for s in attempts) else "failed" if attempts else "todo"
            out.append({"phase": phase, "role": role, "goal": goal, "status": status, "attempts": len(attempts)})
        return out
