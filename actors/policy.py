"""What the orchestrator does next: a policy reads the state and returns a decision.

``State`` is re-derived from the bus at every tick (never kept in memory), and a
``Decision`` is a list of subtasks to dispatch, or a stop, always with a reason that
goes into plan/decisions.md. ``BaselinePolicy`` is the built-in, deterministic one:
understand -> implement -> experiment -> submit, each phase retried once.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from pydantic import BaseModel, Field

from .agent import Subtask


class State(BaseModel):
    config: Any
    completed: dict[str, bool] = Field(default_factory=dict, description="subtask id -> finished successfully")
    dispatched: set[str] = Field(default_factory=set)
    steps: int = 0
    tokens: int = 0
    started: float | None = None
    elapsed_s: float = 0.0
    runs: list[dict] = Field(default_factory=list, description="experiments: name, status, cv_score, higher_is_better")
    stop_reason: str | None = None

    @classmethod
    def from_events(cls, events: pa.Table, config: Any = None) -> "State":
        """The state a project's events describe (the orchestrator's only memory)."""
        kinds = pa.array(["dispatch", "complete", "decision", "experiment", "llm_call"])
        state = cls(config=config)
        for r in events.filter(pc.is_in(events.column("kind"), value_set=kinds)).to_pylist():
            if r["kind"] == "dispatch":
                state.dispatched.add(r["summary"].split(" ", 1)[0])
            elif r["kind"] == "complete":
                state.completed[r["summary"].split(" ", 1)[0]] = dict(r["metrics"] or []).get("ok") == 1.0
            elif r["kind"] == "decision":
                state.steps += 1
                state.started = state.started or r["time"].timestamp()
            elif r["kind"] == "experiment":
                state.add_run(r)
            elif r["kind"] == "llm_call":
                state.tokens += (r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0)
        state.elapsed_s = time.time() - state.started if state.started else 0.0
        return state

    def add_run(self, event: dict) -> None:
        metrics = dict(event["metrics"] or [])
        name = (event["path"] or "").split("/")[1] if event["path"] else event["summary"].split(":")[0]
        self.runs.append({"name": name, "status": event["summary"].split(": ", 1)[-1].split(" ")[0],
                          "cv_score": metrics.get("cv_score"), "higher_is_better": metrics.get("higher_is_better", 1.0)})

    @property
    def best_run(self) -> dict | None:
        scored = [r for r in self.runs if r["cv_score"] is not None]
        if not scored:
            return None
        sign = 1 if scored[0]["higher_is_better"] else -1
        return max(scored, key=lambda r: sign * r["cv_score"])

    @property
    def in_flight(self) -> set[str]:
        return {s for s in self.dispatched if s not in self.completed}

    def target_reached(self) -> bool:
        best, target = self.best_run, self.config.target
        if best is None or target is None:
            return False
        return best["cv_score"] >= target if best["higher_is_better"] else best["cv_score"] <= target

    def check_stop(self) -> None:
        c = self.config
        if self.elapsed_s > c.budget_s:
            self.stop_reason = f"wall-clock budget spent ({self.elapsed_s:.0f} s > {c.budget_s:.0f} s)"
        elif self.steps >= c.max_steps:
            self.stop_reason = f"step budget spent ({self.steps} decisions)"
        elif self.tokens >= c.max_tokens:
            self.stop_reason = f"token budget spent ({self.tokens} tokens)"

    def metrics(self) -> dict[str, float]:
        best = self.best_run
        return {"steps": float(self.steps), "tokens": float(self.tokens), "elapsed_s": self.elapsed_s,
                **({"best_cv_score": best["cv_score"]} if best else {})}


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
            params: dict = {"kind": state.config.task_kind}
            if phase == "submit":
                best = state.best_run
                if best is None:
                    return Decision(stop=True, reason="no experiment produced a score: nothing to submit")
                params["best"] = best["name"]
            sid = f"{phase}-{len(attempts) + 1}"  # the same id as an in-flight attempt: idempotent re-dispatch
            context = f"BASELINE: {json.dumps(params)}"
            if not state.config.bus_memory and phase == "submit":
                context += f"\nThe best run is experiments/{params['best']}/ (cv {state.best_run['cv_score']:.5f})."
            why = f"{phase}: {'retry' if attempts else 'next phase'}" + (
                f" (best run so far {params['best']})" if phase == "submit" else "")
            return Decision(subtasks=[Subtask(id=sid, role=role, goal=goal, context=context)], reason=why)
        return Decision(stop=True, reason="submitted: every phase is done")

    def roadmap(self, state: State) -> list[dict]:
        out = []
        for phase, role, goal in PHASES:
            attempts = [s for s in state.completed if s.startswith(f"{phase}-")]
            status = "done" if any(state.completed[s] for s in attempts) else "failed" if attempts else "todo"
            out.append({"phase": phase, "role": role, "goal": goal, "status": status, "attempts": len(attempts)})
        return out
