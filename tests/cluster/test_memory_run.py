"""Memory across projects end to end: a second project on a task the bus has already
solved starts with what won there (the baseline's grid ordered and narrowed by
plan/prior.json); with the switch off it gets no prior and runs the whole grid."""

import json

import numpy as np
import pytest

from actors.memory import PRIOR_JSON, PRIOR_MD, Prior
from benchmarks.mlebench.task import shipped_tasks
from bus.query import run_outcomes
from cluster.run import make_job, run_job

pytestmark = pytest.mark.slow  # three whole projects


def _best(bus, project):
    runs = run_outcomes(bus, [project]).to_pandas()
    scored = runs[(runs["status"] == "ok") & np.isfinite(runs["score"])]
    return runs, scored.sort_values(["score", "order"], ascending=[False, True]).iloc[0]


def test_a_second_project_on_a_solved_task_starts_with_what_won(ray_cluster, bus):
    task = str(shipped_tasks()["digits"])
    # The flat grid, where the prior orders and narrows the whole plan (the tree search
    # only drafts the prior's winners first: tests/actors/test_tree.py, docs/orchestrator.md).
    assert run_job(bus, make_job(task, project="digits-a", budget_s=600, search="grid")).grade.valid_submission
    on = run_job(bus, make_job(task, project="digits-b", budget_s=600, search="grid"))
    off_job = make_job(task, project="digits-c", budget_s=600, search="grid")
    off_job.cross_project_memory = False
    off = run_job(bus, off_job)
    assert on.grade.valid_submission and off.grade.valid_submission

    viewer = bus.project("digits-b").as_role("viewer")
    prior = Prior.model_validate_json(viewer.read(PRIOR_JSON))
    assert [q.project for q in prior.projects] == ["digits-a"] and "digits-a" in viewer.read(PRIOR_MD)
    runs_a, best_a = _best(bus, "digits-a")
    runs_b, best_b = _best(bus, "digits-b")
    runs_c, _ = _best(bus, "digits-c")
    # It asked first for what won there, fewer runs in all, and reached the same best score with its first run.
    request = json.loads(bus.project("digits-b").read_object(runs_b.iloc[0]["hash"]))
    winner = json.loads(bus.project("digits-a").read_object(best_a["hash"]))
    assert request["command"] == winner["command"]
    assert len(runs_b) < len(runs_a) == len(runs_c)
    assert best_b["score"] == best_a["score"] and best_b["order"] == 1
    # The switch off: no prior written, the whole grid run.
    assert not [p for p in bus.project("digits-c").as_role("viewer").list("plan") if "prior" in p]
