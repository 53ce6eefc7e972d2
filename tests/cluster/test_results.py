"""What a run returns is judged by the framework: non-finite numbers are never a result
(issue 10, kind 3), and a run is immutable once it has one (kind 10)."""

from __future__ import annotations

import json

import pytest

from actors.agent import Agent, Subtask
from actors.llm.scripted import reply
from benchmarks.mlebench.task import Task, shipped_tasks

from .inprocess import Hybrid, call, run_project

TASK = Task(shipped_tasks()["breast-cancer"])
TRAIN = r'''import json, sys
import pandas as pd
from sklearn.linear_model import LogisticRegression
train, test = pd.read_csv("../../task/train.csv"), pd.read_csv("../../task/test.csv")
mode = sys.argv[1]
if mode in ("nan", "inf", "text"):   # a diverged model: loss and metric are NaN
    pd.DataFrame({"id": test["id"], "target": 0.5}).to_csv("submission.csv", index=False)
    value = {"nan": float("nan"), "inf": float("inf"), "text": "0.99"}[mode]
    json.dump({"cv_score": value}, open("metrics.json", "w"))
else:
    m = LogisticRegression(max_iter=5000).fit(train.drop(columns=["id", "target"]), train["target"])
    pd.DataFrame({"id": test["id"], "target": m.predict_proba(test.drop(columns=["id"]))[:, 1]}).to_csv(
        "submission.csv", index=False)
    json.dump({"cv_score": 0.97}, open("metrics.json", "w"))
'''


def _launch(name, mode):
    return ("launch_experiment", {"name": name, "command": f"python3 ../../code/train.py {mode}", "timeout_s": 120})


@pytest.mark.slow
def test_a_nan_score_is_an_invalid_run_never_the_best(bus):
    """The issue's example: a run reporting cv_score NaN, finishing first, was taken as
    the best and submitted. Siblings: inf, and a number written as a string."""
    script = {"implement-1": [call("write_file", path="code/train.py", content=TRAIN, summary="modes"),
                              call("finish", summary="ok")],
              "experiment-1": [reply(calls=[_launch("a-nan", "nan"), _launch("b-inf", "inf"),
                                            _launch("c-text", "text"), _launch("d-good", "good")]),
                               call("finish", summary="asked")]}
    state, grade = run_project(bus, str(TASK.root), Hybrid(script))
    runs = {r.id: r for r in state.runs}
    assert runs["a-nan"].status == runs["b-inf"].status == "invalid", runs
    assert runs["c-text"].status == "ok" and runs["c-text"].cv_score is None  # no number: no score
    assert state.best_run.id == "d-good" and grade.valid_submission and grade.score > 0.9, (state.best_run, grade)
    result = json.loads(bus.project("p").as_role("viewer").read("experiments/a-nan/result.json"))
    assert "non-finite" in result["reason"] and "cv_score" in result["reason"]


@pytest.mark.slow
def test_a_second_run_under_a_taken_name_is_refused_and_the_first_stays_whole(bus):
    """The issue's example: a failed re-run under a name whose first attempt scored kept
    the old score as best while the folder held the retry's partial submission.csv."""
    bad = "head -5 ../../task/test.csv > submission.csv; exit 1"
    script = {"implement-1": [call("write_file", path="code/train.py", content=TRAIN, summary="modes"),
                              call("finish", summary="ok")],
              "experiment-1": [call("launch_experiment", **_launch("lr", "good")[1]), call("finish", summary="asked")],
              "experiment-2": [call("finish", summary="-")]}
    state, grade = run_project(bus, str(TASK.root), Hybrid(script))
    assert state.best_run.id == "lr" and grade.valid_submission
    # After lr has scored, the experimenter of a later subtask launches "lr" again.
    again = Agent(bus, Hybrid({"experiment-9": [call("launch_experiment", name="lr", command=bad),
                                                call("finish", summary="relaunched")]}))
    agent_result = again.run("p", Subtask(id="experiment-9", role="experimenter", goal="run lr again"))
    assert agent_result.status == "finished"
    shown = [json.loads(bus.project("p").as_role("viewer").read(p)) for p in
             bus.project("p").as_role("viewer").list("logs/llm/experimenter-experiment-9")]
    tool_replies = [m["content"] for c in shown for m in c["request"]["messages"] if m["role"] == "tool"]
    assert any("already asked for" in t and "choose a new name" in t for t in tool_replies), tool_replies
    requests = [e for e in bus.project("p").events().to_pylist() if e["kind"] == "run_requested"]
    assert [e["run"] for e in requests] == ["lr"]  # the second request was never recorded
    submitted = bus.project("p").as_role("viewer").read("experiments/lr/submission.csv")
    assert len(submitted.splitlines()) == len(TASK.public_dir.joinpath("test.csv").read_text().splitlines())
