"""A project's state, derived from its events: the orchestrator's only memory.

``State.from_events`` is re-run at every tick (and by ``aisci status``), never kept in
memory, so whatever process reads the bus next (a restarted actor, a resumed job)
sees the same state. It reads typed columns only (``subtask``, ``run``, ``attempt``,
``status``, ``hash``, ``metrics``), never the summaries, which are for people:

- ``decision`` (path ``plan/steps/<n>.json``, ``hash`` of that file): step n is
  committed; its subtasks are owed until each has a ``complete`` event.
- ``dispatch`` / ``complete`` (``subtask`` or ``run``, ``attempt``, ``status``): a
  subtask or a run sent out / a subtask finished.
- ``run_requested`` (``run``: the run's id, ``hash``: the request in the version
  store): a run an agent asked for through ``launch_experiment`` (the first request
  of an id owns it; a later one was refused to its agent). It is owed until an
  ``experiment`` event (``run``, ``status``) records its result; a run with a result
  is never run again. Nothing else makes a run: a spec.json written by hand is a file.
- ``pause_requested`` (``status`` ``moved`` when the orchestrator leaves its drained
  node) / ``paused`` / ``resumed`` / ``stopped`` / ``failed``.
- ``llm_call``: tokens spent.
- ``tree_node`` (``subtask``: the node's id, ``hash``: its content): a candidate of the
  solution tree (``actors.tree``); kept as rows here, read and derived there.
- ``write`` of a file under ``code/``: the code version a run is asked for with.

- ``started``: the driver started the job (``cluster.run``): the budget's clock starts
  (before the first decision, which may itself take a model call of any length).

Time: the wall-clock budget counts active time only, from the job's start (``started``,
else the first decision); a pause
(or a crash: from its last event to the ``resumed`` of the next start) does not count.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from .runs import MIN_LEFT_S, RunStatus
from .score import Score

_KINDS = pa.array(["started", "dispatch", "complete", "decision", "run_requested", "experiment", "llm_call",
                   "pause_requested", "paused", "resumed", "stopped", "failed", "tree_node", "write"])
SCORE_KEY = "cv_score"  # the metric a run reports in metrics.json (the prompts and the template say so)


class RunRecord(BaseModel):
    """A run as the events tell it: asked for, and (once it has one) its result."""

    id: str
    requested_seq: int
    request_hash: str | None = None
    subtask: str | None = Field(default=None, description="The subtask whose agent asked for it.")
    status: RunStatus | None = Field(default=None, description="None while it has no result.")
    cv_score: float | None = Field(default=None, description="Finite, from an ok run's metrics; else None.")
    code: str | None = Field(default=None, description="The version of code/ when it was asked for (a digest "
                             "of each file's content hash; the run reads code/ when it starts).")


def code_digest(versions: dict[str, str]) -> str | None:
    """One short id for the code/ files' versions (path -> content hash)."""
    if not versions:
        return None
    return hashlib.sha256(json.dumps(sorted(versions.items())).encode()).hexdigest()[:12]


def say_runs(ended: int, scored: int) -> str:
    """Runs that ended, for people: "8", or "8 (6 scored)" when some have no score."""
    return f"{ended}" if scored == ended else f"{ended} ({scored} scored)"


class State(BaseModel):
    config: Any
    completed: dict[str, bool] = Field(default_factory=dict, description="subtask id -> finished successfully")
    summaries: dict[str, str] = Field(default_factory=dict, description="subtask id -> its complete event's "
                                      "summary: shown to the deciding model as it is, never parsed")
    dispatches: Counter = Field(default_factory=Counter, description="subtask or run id -> times dispatched")
    run_dispatches: Counter = Field(default_factory=Counter, description="run id -> times the run was dispatched "
                                    "(a tree node's run shares its subtask's id: counted apart here)")
    steps: int = 0
    last_step: str | None = Field(default=None, description="plan/steps/<n>.json of the last committed decision")
    step_hashes: list[str] = Field(default_factory=list, description="each committed step's content (version store)")
    tokens: int = 0
    started: float | None = Field(default=None, description="when the budget's clock started (the job's start)")
    elapsed_s: float = Field(default=0.0, description="active time since the first decision (pauses excluded)")
    run_records: dict[str, RunRecord] = Field(default_factory=dict, description="run id -> record, in request order")
    pause_requested: str | None = Field(default=None, description="why, while a pause is asked for and not resumed")
    pause_moves: bool = Field(default=False, description="the pause is the orchestrator leaving its drained node "
                              "(status 'moved'): the driver starts it elsewhere")
    paused: bool = False
    stopped: str | None = None
    failed: str | None = Field(default=None, description="why the orchestrator failed (until a resume)")
    stop_reason: str | None = None
    seq: int = Field(default=0, description="the last event this state was derived from")
    node_rows: list[dict] = Field(default_factory=list, description="the tree_node events (seq, subtask, hash), "
                                  "in order: the solution tree's nodes (actors.tree builds the tree from them)")
    tree: Any = Field(default=None, description="the solution tree (actors.tree.Tree), where the orchestrator "
                      "built it for this tick")

    @classmethod
    def from_events(cls, events: pa.Table, config: Any = None, now: float | None = None) -> "State":
        state = cls(config=config)
        state.seq = int(events.column("seq")[-1].as_py()) if events.num_rows else 0
        active_s, active_since, last_t = 0.0, None, None
        code: dict[str, str] = {}
        for r in events.filter(pc.is_in(events.column("kind"), value_set=_KINDS)).to_pylist():
            kind, t = r["kind"], r["time"].timestamp()
            if kind == "dispatch":
                state.dispatches[r["subtask"] or r["run"] or "?"] += 1
                if r["run"] and not r["subtask"]:
                    state.run_dispatches[r["run"]] += 1
            elif kind == "complete":
                state.completed[r["subtask"] or "?"] = r["status"] == "finished"
                state.summaries[r["subtask"] or "?"] = r["summary"] or ""
            elif kind == "decision":
                state.steps += 1
                state.last_step = r["path"]
                state.step_hashes.append(r["hash"])
                if state.started is None:  # a project run without a driver (tests): its first decision
                    state.started = active_since = t
            elif kind == "started" and state.started is None:
                state.started = active_since = t
            elif kind == "run_requested" and r["run"] and r["run"] not in state.run_records:  # the first owns the id
                state.run_records[r["run"]] = RunRecord(id=r["run"], requested_seq=r["seq"], request_hash=r["hash"],
                                                        subtask=r["subtask"], code=code_digest(code))
            elif kind == "write":
                if (r["path"] or "").startswith("code/") and r["hash"]:
                    code[r["path"]] = r["hash"]
            elif kind == "tree_node":
                state.node_rows.append({"seq": r["seq"], "subtask": r["subtask"], "hash": r["hash"]})
            elif kind == "experiment" and r["run"] in state.run_records:
                state._add_result(state.run_records[r["run"]], r)
            elif kind == "llm_call":
                state.tokens += (r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0)
            elif kind == "pause_requested":
                state.pause_requested, state.paused = r["summary"] or "pause requested", False
                state.pause_moves = r["status"] == "moved"
            elif kind in ("paused", "stopped", "failed"):
                if active_since is not None:
                    active_s, active_since = active_s + t - active_since, None
                if kind == "paused":
                    state.paused = True
                elif kind == "stopped":
                    state.stopped = r["summary"] or "stopped"
                else:
                    state.failed = r["summary"] or "failed"
            elif kind == "resumed":
                if active_since is not None and last_t is not None:  # a crash: its downtime does not count
                    active_s += max(last_t - active_since, 0.0)
                active_since = t if state.started is not None else None
                state.pause_requested, state.paused, state.stopped, state.failed = None, False, None, None
            last_t = t
        now = time.time() if now is None else now
        state.elapsed_s = active_s + (now - active_since if active_since is not None else 0.0)
        return state

    @staticmethod
    def _add_result(run: RunRecord, event: dict) -> None:
        run.status = event["status"]
        value = dict(event["metrics"] or []).get(SCORE_KEY)
        run.cv_score = value if run.status == "ok" and Score.of(value, False) is not None else None

    # -- derived facts -----------------------------------------------------------------

    @property
    def runs(self) -> list[RunRecord]:
        """Every run asked for, in request order."""
        return list(self.run_records.values())

    @property
    def pending_runs(self) -> list[RunRecord]:
        """Runs asked for that have no result yet (in request order)."""
        return [r for r in self.run_records.values() if r.status is None]

    def runs_said(self) -> str:
        """The runs that ended, as the progress line, ``aisci status`` and the report
        say them: "8" when all were scored, else "8 (6 scored)" (a failed run has no
        score; the breaker saw status count 6 where the report listed 8)."""
        return say_runs(sum(1 for r in self.run_records.values() if r.status is not None),
                        sum(1 for r in self.run_records.values() if r.cv_score is not None))

    @property
    def is_lower_better(self) -> bool:
        return bool(getattr(self.config, "is_lower_better", False))

    def score(self, run: RunRecord) -> Score | None:
        return None if run.cv_score is None else Score(run.cv_score, self.is_lower_better)

    @property
    def scored_runs(self) -> list[RunRecord]:
        """Runs with a score, best first (the direction is the task's metric's)."""
        return sorted((r for r in self.runs if r.cv_score is not None), key=self.score, reverse=True)

    @property
    def best_run(self) -> RunRecord | None:
        scored = self.scored_runs
        return scored[0] if scored else None

    @property
    def dispatched(self) -> set[str]:
        return set(self.dispatches)

    @property
    def in_flight(self) -> set[str]:
        """Subtasks and runs dispatched that have not ended. A subtask ends with its
        ``complete`` event, a run with its result: apart, since a tree node's run has its
        subtask's id and now starts while the subtask goes on (it was hidden from status
        and from the pause's record as soon as the subtask completed)."""
        subtasks = {s for s, n in self.dispatches.items() if n > self.run_dispatches.get(s, 0)}
        runs = {r for r in self.run_dispatches if r in self.run_records and self.run_records[r].status is None}
        return {s for s in subtasks if s not in self.completed} | runs

    def target_reached(self) -> bool:
        best, target = self.best_run, getattr(self.config, "target", None)
        return best is not None and target is not None and self.score(best).reaches(target)

    def time_left_s(self) -> float | None:
        budget = getattr(self.config, "budget_s", None)
        return None if budget is None else budget - self.elapsed_s

    def check_stop(self) -> None:
        c = self.config
        if self.elapsed_s >= c.budget_s - MIN_LEFT_S:  # nothing new starts in what is left (actors.runs)
            self.stop_reason = f"wall-clock budget spent ({self.elapsed_s:.0f} s of {c.budget_s:.0f} s)"
        elif self.steps >= c.max_steps:
            self.stop_reason = f"step budget spent ({self.steps} decisions)"
        elif self.tokens >= c.max_tokens:
            self.stop_reason = f"token budget spent ({self.tokens} tokens)"

    def metrics(self) -> dict[str, float]:
        best = self.best_run
        return {"steps": float(self.steps), "tokens": float(self.tokens), "elapsed_s": self.elapsed_s,
                **({"best_cv_score": best.cv_score} if best else {})}
