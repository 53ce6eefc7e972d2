"""The submission a project ends with: its own, or else the champion's.

When a project stops (its policy says it is done, or a budget is spent) and
``submission/submission.csv`` is not there, the framework puts the predictions of the
best run by cross-validation (``State.best_run``: the task metric's direction, finite
scores only, never the private answers) in its place, as the system, so that a short
budget that scored runs still ends with a submission. With bus memory off (the
ablation) it does not: the writer could not reuse experiments, and neither does the
framework on its behalf.

The stop reason says which it was, so "submitted" is said only when a file exists.

The candidate registry (``registry``, written as ``plan/candidates.json`` when the
project stops): every scored run whose predictions the grader would take (checked as
``check_submission`` does, against the public sample; never the private answers),
best cross-validation score first, each with its node of the solution tree and the
content hash of its predictions (every version stays on the bus). The champion is its
first entry: a run whose predictions are invalid is passed over, never submitted.
"""

from __future__ import annotations

import json

from pydantic import BaseModel

from bus import RoleView

from .state import State
from .submission import check_on_bus

SUBMISSION = "submission/submission.csv"
REGISTRY = "plan/candidates.json"


class Candidate(BaseModel):
    """A run whose predictions could be submitted."""

    run: str
    node: str | None = None
    cv_score: float
    path: str
    hash: str | None = None
    check: str


def registry(system: RoleView, state: State) -> list[Candidate]:
    """The scored runs with predictions the grader would take, best first."""
    out = []
    for run in state.scored_runs:
        path = f"experiments/{run.id}/submission.csv"
        checked = check_on_bus(system, path)
        if checked.kind in ("valid", "unchecked"):  # unchecked: the task gives no sample to check against
            versions = system.versions(path).to_pylist()
            out.append(Candidate(run=run.id, node=run.subtask, cv_score=run.cv_score, path=path,
                                 hash=versions[-1]["hash"] if versions else None, check=checked.text()[:200]))
    return out


def settle_submission(system: RoleView, state: State, bus_memory: bool = True) -> str:
    """Make sure the project ends with a submission if it can; returns what to add to
    the stop reason (``"submission: ..."``). ``system``: a system view of the project.
    Writes the candidate registry (``plan/candidates.json``) on the way."""
    candidates = registry(system, state)
    system.write_if_changed(REGISTRY, json.dumps([c.model_dump() for c in candidates], indent=1),
                            f"{len(candidates)} candidate submissions, best cv first")
    if system.exists(SUBMISSION):
        return f"submission: {SUBMISSION} is in place"
    best = state.best_run
    if best is None:
        return "no submission: no run produced a finite cv score"
    if not bus_memory:
        return "no submission: the writer did not put one in place (bus memory off: no fallback to the best run)"
    if not candidates:
        return f"no submission: no scored run wrote predictions the grader would take (the best run {best.id} neither)"
    best, source = state.run_records[candidates[0].run], candidates[0].path
    system.write(SUBMISSION, system.read_bytes(source),
                 summary=f"the predictions of {best.id} (best cv score {best.cv_score:.6g}), put in place at the end")
    return f"submission: the predictions of the best run {best.id} (cv {best.cv_score:.4g}), put in place at the end"
