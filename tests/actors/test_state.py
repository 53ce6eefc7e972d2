"""A project's state comes from typed columns, never from the wording of a summary
(issue 10, kind 12: resume parsed subtask ids out of summaries, so rewording a message
broke it), and scores are compared in the task metric's direction only."""

from __future__ import annotations

import math

import pytest

from actors.orchestrator import OrchestratorConfig
from actors.score import NotAScore, Score
from actors.state import State


def _events(project, summaries: str):
    view = project.as_role("system", "test")
    view.record("decision", summaries, path="plan/steps/0001.json", hash="0" * 64)
    view.record("dispatch", summaries, subtask="analyse-1", attempt=1)
    view.record("complete", summaries, subtask="analyse-1", status="finished")
    view.record("dispatch", summaries, subtask="implement-1", attempt=1)
    for name, value in (("a", 0.3), ("b", 0.1), ("c", float("nan")), ("d", 0.2)):
        view.record("run_requested", summaries, run=name, hash="1" * 64, subtask="experiment-1")
        metrics = {"cv_score": value} if not math.isnan(value) else {}
        view.record("experiment", summaries, run=name, status="ok" if name != "c" else "invalid", metrics=metrics)
    view.record("run_requested", summaries, run="e", hash="2" * 64)  # asked for, no result yet
    view.record("run_requested", summaries, run="a", hash="3" * 64)  # a second request of a taken name
    return project.events()


@pytest.mark.parametrize("summary", ["", "analyse-1 finished: done", "完全に違う文言 ✓", "run-x: ok in 1 s"])
def test_state_reads_columns_whatever_the_summaries_say(bus, summary):
    events = _events(bus.create_project("p"), summary)
    state = State.from_events(events, OrchestratorConfig(project="p", is_lower_better=True))
    assert state.completed == {"analyse-1": True} and state.in_flight == {"implement-1"}
    assert [r.id for r in state.runs] == ["a", "b", "c", "d", "e"]  # the second "a" does not replace the first
    assert state.run_records["a"].request_hash == "1" * 64
    assert [r.id for r in state.pending_runs] == ["e"]
    assert state.best_run.id == "b" and [r.id for r in state.scored_runs] == ["b", "d", "a"]  # lower is better
    assert state.runs_said() == "4 (3 scored)"  # the invalid run ended unscored; the pending one has not ended
    higher = State.from_events(events, OrchestratorConfig(project="p", is_lower_better=False))
    assert higher.best_run.id == "a"


def test_a_tree_nodes_run_is_in_flight_after_its_subtask_completes(bus):
    """A tree node's run has its subtask's id and starts while the subtask goes on: the
    subtask's ``complete`` hid it (the breaker's status showed no run under way while
    three ran, and the pause recorded "in flight: nothing" with one running)."""
    view = bus.create_project("t").as_role("system", "test")
    view.record("decision", "draft", path="plan/steps/0001.json", hash="0" * 64)
    view.record("dispatch", "draft-3 to experimenter", subtask="draft-3", attempt=1)
    view.record("run_requested", "draft-3", run="draft-3", hash="1" * 64, subtask="draft-3")
    view.record("dispatch", "draft-3: python train.py", run="draft-3", attempt=1)

    def state():
        return State.from_events(bus.project("t").events(), OrchestratorConfig(project="t"))
    assert state().in_flight == {"draft-3"}  # the subtask and its run: both going
    view.record("complete", "draft-3 finished", subtask="draft-3", status="finished")
    assert state().in_flight == {"draft-3"}  # the run goes on
    view.record("experiment", "draft-3: ok", run="draft-3", status="ok", metrics={"cv_score": 0.9})
    assert state().in_flight == set() and state().dispatches["draft-3"] == 2


def test_scores_order_by_their_metrics_direction_and_refuse_non_finite():
    assert Score(0.1, True) > Score(0.3, True) and Score(0.3, False) > Score(0.1, False)
    assert max([Score(2.0, True), Score(1.0, True)]).value == 1.0
    for bad in (float("nan"), float("inf"), "0.5", None, True):
        assert Score.of(bad, False) is None
        with pytest.raises(NotAScore):
            Score(bad, False)
    with pytest.raises(ValueError, match="opposite directions"):
        Score(1.0, True) < Score(1.0, False)
    assert Score(0.5, True).reaches(0.6) and not Score(0.5, False).reaches(0.6)


def test_the_budget_runs_from_the_jobs_start_not_from_its_first_decision(project):
    """A first decision that takes long (a slow or stalled model) counts against the
    budget: before, the clock started at the first decision, so a model that never
    answered kept a project at step 0 forever."""
    project.as_role("system", "driver").record("started", "the job started")
    config = OrchestratorConfig(project=project.name, budget_s=60)
    t0 = project.events().to_pylist()[0]["time"].timestamp()
    state = State.from_events(project.events(), config, now=t0 + 100)
    assert state.steps == 0 and state.elapsed_s == pytest.approx(100, abs=1)
    state.check_stop()
    assert state.stop_reason.startswith("wall-clock budget spent")


def test_under_a_second_left_the_budget_is_spent(project):
    """Nothing new starts with under MIN_LEFT_S left (a run is refused then): the
    orchestrator stops instead of deciding nodes whose runs would all be refused (the
    breaker: the baseline decided 3 in the budget's last 0.8 s, then called them failed)."""
    project.as_role("system", "driver").record("started", "the job started")
    config = OrchestratorConfig(project=project.name, budget_s=60)
    t0 = project.events().to_pylist()[0]["time"].timestamp()
    state = State.from_events(project.events(), config, now=t0 + 59.5)
    state.check_stop()
    assert state.stop_reason.startswith("wall-clock budget spent")
    state = State.from_events(project.events(), config, now=t0 + 58.5)
    state.check_stop()
    assert not state.stop_reason
