"""A project's state, derived from its events: the orchestrator's only memory.

``State.from_events`` is re-run at every tick (and by ``aisci status``), never kept in
memory, so whatever process reads the bus next (a restarted actor, a resumed job)
sees the same state. The events it reads and what they mean:

- ``decision`` (path ``plan/steps/<n>.json``): step n is committed; its subtasks are
  owed until each has a ``complete`` event.
- ``dispatch`` / ``complete``: a subtask (or ``run-<name>``) sent out / finished.
- a write of ``experiments/<name>/spec.json``: a run asked for; it is owed until an
  ``experiment`` event (written by the run itself) is newer than the spec.
- ``pause_requested`` / ``resumed``: a preemption notice, and its end.
- ``llm_call``: tokens spent.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

_KINDS = pa.array(["dispatch", "complete", "decision", "experiment", "llm_call", "write",
                   "pause_requested", "paused", "resumed", "stopped"])


class State(BaseModel):
    config: Any
    completed: dict[str, bool] = Field(default_factory=dict, description="subtask id -> finished successfully")
    dispatches: Counter = Field(default_factory=Counter, description="subtask id -> times dispatched")
    steps: int = 0
    last_step: str | None = Field(default=None, description="plan/steps/<n>.json of the last committed decision")
    tokens: int = 0
    started: float | None = None
    elapsed_s: float = 0.0
    runs: list[dict] = Field(default_factory=list, description="experiments: name, status, cv_score, higher_is_better")
    specs: dict[str, int] = Field(default_factory=dict, description="run name -> seq of its latest spec.json")
    ran: dict[str, int] = Field(default_factory=dict, description="run name -> seq of its latest result")
    pause_requested: str | None = Field(default=None, description="why, while a pause is asked for and not resumed")
    paused: bool = False
    stopped: str | None = None
    stop_reason: str | None = None

    @classmethod
    def from_events(cls, events: pa.Table, config: Any = None) -> "State":
        state = cls(config=config)
        for r in events.filter(pc.is_in(events.column("kind"), value_set=_KINDS)).to_pylist():
            kind, summary = r["kind"], r["summary"] or ""
            if kind == "dispatch":
                state.dispatches[summary.split(" ", 1)[0]] += 1
            elif kind == "complete":
                state.completed[summary.split(" ", 1)[0]] = dict(r["metrics"] or []).get("ok") == 1.0
            elif kind == "decision":
                state.steps += 1
                state.last_step = r["path"]
                state.started = state.started or r["time"].timestamp()
            elif kind == "experiment":
                state.add_run(r)
            elif kind == "llm_call":
                state.tokens += (r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0)
            elif kind == "write" and r["path"].startswith("experiments/") and r["path"].endswith("/spec.json") \
                    and r["path"].count("/") == 2:
                state.specs[r["path"].split("/")[1]] = r["seq"]
            elif kind == "pause_requested":
                state.pause_requested, state.paused = summary or "pause requested", False
            elif kind == "paused":
                state.paused = True
            elif kind == "resumed":
                state.pause_requested, state.paused, state.stopped = None, False, None
            elif kind == "stopped":
                state.stopped = summary
        state.elapsed_s = time.time() - state.started if state.started else 0.0
        return state

    def add_run(self, event: dict) -> None:
        metrics = dict(event["metrics"] or [])
        name = (event["path"] or "").split("/")[1] if event["path"] else event["summary"].split(":")[0]
        status = event["summary"].split(": ", 1)[-1].split(" ")[0]
        self.runs.append({"name": name, "status": status, "cv_score": metrics.get("cv_score"),
                          "higher_is_better": metrics.get("higher_is_better", 1.0)})
        self.ran[name] = event["seq"]
        self.completed[f"run-{name}"] = status == "ok"

    @property
    def pending_runs(self) -> list[str]:
        """Runs asked for (a spec on the bus) with no result newer than the spec."""
        return sorted(n for n, seq in self.specs.items() if self.ran.get(n, -1) < seq)

    @property
    def best_run(self) -> dict | None:
        scored = [r for r in self.runs if r["cv_score"] is not None]
        if not scored:
            return None
        sign = 1 if scored[0]["higher_is_better"] else -1
        return max(scored, key=lambda r: sign * r["cv_score"])

    @property
    def dispatched(self) -> set[str]:
        return set(self.dispatches)

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
