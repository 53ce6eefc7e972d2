"""A project ends with a submission whenever a run scored: its writer's, or else the
best run's predictions put in place by the framework; the stop reason says which, and
says "no submission" (with why) when there is none."""

import pytest

from actors.champion import settle_submission
from actors.orchestrator import OrchestratorConfig
from actors.runs import RunResult, record_result
from actors.state import State
from benchmarks.mlebench.task import shipped_tasks

from .inprocess import Hybrid, call, run_project

pytestmark = pytest.mark.slow  # a whole project or a cluster of its own: `pytest -m 'not slow'` skips it


def _stopped(bus, project):
    return [e for e in bus.project(project).events().to_pylist() if e["kind"] == "stopped"][-1]["summary"]


def test_a_step_budget_spent_before_the_submit_phase_still_submits_the_best_run(bus):
    # analyse, implement, experiment, submit committed: then the step budget is spent, before the writer runs.
    state, grade = run_project(bus, str(shipped_tasks()["digits"]), Hybrid({}), project="short", max_steps=4)
    reason = _stopped(bus, "short")
    assert reason.startswith("step budget spent") and f"best run {state.best_run.id}" in reason
    assert grade.valid_submission and grade.score is not None
    row = bus.project("short").as_role("viewer").versions("submission/submission.csv").to_pylist()[-1]
    assert row["role"] == "system"  # the framework put it there, and the bus says so


def test_a_writer_that_submits_nothing_is_not_called_submitted(bus):
    # The writer only calls finish, which is refused (runs wrote predictions to copy) until the repeat
    # guard ends it, twice: the framework submits the champion.
    lazy = Hybrid({f"submit-{n}": [call("finish", summary="done")] * 3 for n in (1, 2)})
    state, grade = run_project(bus, str(shipped_tasks()["digits"]), lazy, project="lazy")
    reason = _stopped(bus, "lazy")
    assert reason.startswith("phase submit failed twice: stopping; submission: the predictions of the best run")
    ends = [e["summary"] for e in bus.project("lazy").events().to_pylist()
            if e["kind"] == "agent_end" and e["instance"].startswith("writer-submit")]
    assert len(ends) == 2 and all("repeated call" in s for s in ends), ends
    assert grade.valid_submission


def test_with_bus_memory_off_the_framework_does_not_submit_for_the_writer(bus):
    proj = bus.create_project("off")
    system = proj.as_role("system", "test")
    system.record("run_requested", "a", run="a")
    system.write("experiments/a/submission.csv", "id,target\n1,2\n")
    record_result(system, RunResult(id="a", status="ok", metrics={"cv_score": 0.9}))
    state = State.from_events(proj.events(), OrchestratorConfig(project="off"))
    assert state.best_run is not None
    note = settle_submission(system, state, bus_memory=False)
    assert note.startswith("no submission") and not system.exists("submission/submission.csv")
    assert settle_submission(system, state, bus_memory=True).startswith("submission: the predictions of the best run a")
    assert system.read("submission/submission.csv") == "id,target\n1,2\n"


def test_a_project_with_no_scored_run_says_no_submission(bus):
    broken = Hybrid({"implement-1": [call("write_file", path="code/train.py", content="raise SystemExit(3)\n"),
                                     call("finish", summary="wrote a broken train.py")],
                     "implement-2": [call("write_file", path="code/train.py", content="raise SystemExit(3)\n"),
                                     call("finish", summary="wrote a broken train.py")]})
    state, grade = run_project(bus, str(shipped_tasks()["digits"]), broken, project="none", max_steps=6)
    reason = _stopped(bus, "none")
    assert "no submission: no run produced a finite cv score" in reason
    assert not grade.valid_submission
