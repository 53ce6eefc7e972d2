"""The baseline's ensemble (actors/templates/ensemble.py) as a run runs it: members' out-of-fold
predictions combined and scored by cross-validation (recomputed here from the files and the
training truth, never the private answers); on digits the vote of three families beats each."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.mlebench.task import Task, shipped_tasks
from tests.actors.test_templates import run_template
from tests.benchmarks import folders


def run_in(work: Path, run: str, *args: str) -> subprocess.CompletedProcess:
    (work / "experiments" / run).mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, *args], cwd=work / "experiments" / run, capture_output=True, text=True,
                          timeout=600, check=False)


def ensemble(work: Path, runs: list[str], name: str = "ens") -> tuple[subprocess.CompletedProcess, Path]:
    return run_in(work, name, "../../code/ensemble.py", "--runs", ",".join(runs)), work / "experiments" / name


@pytest.mark.slow  # three fits of digits
def test_the_vote_of_three_families_is_scored_by_cv_and_beats_each_on_digits(tmp_path):
    task = Task(shipped_tasks()["digits"])
    members = {"knn": ("knn", {"n_neighbors": 7}), "forest": ("forest", {"n_estimators": 200}),
               "logreg": ("logreg", {"C": 0.1})}
    scores = {}
    for i, (name, (model, params)) in enumerate(members.items()):
        scores[name] = run_template(task, tmp_path, model, params, run=name, setup=i == 0)[0]["cv_score"]
    done, out = ensemble(tmp_path, list(members))
    assert done.returncode == 0, done.stderr[-2000:]
    cv = json.loads((out / "metrics.json").read_text())["cv_score"]
    # The score is the vote of the members' out-of-fold labels against the training labels (recomputed here).
    truth = pd.read_csv(tmp_path / "task" / "train.csv")[task.target_columns[0]].to_numpy()
    oof = np.column_stack([pd.read_csv(tmp_path / "experiments" / m / "oof.csv")[task.target_columns[0]]
                           for m in members])
    voted = [max(row, key=lambda v: (list(row).count(v), -list(row).index(v))) for row in oof]
    assert cv == pytest.approx(float(np.mean(np.asarray(voted) == truth)))
    assert cv > max(scores.values()), (cv, scores)  # three families that err differently: the vote wins
    grade = task.grade(out / "submission.csv")
    assert grade.valid_submission, grade.reason


def test_probabilities_are_averaged_and_a_member_that_is_not_a_run_is_one_clear_line(tmp_path):
    task = Task(folders.BUILDERS["text-classes"](tmp_path / "data"))
    run_template(task, tmp_path, "tfidf-logreg", {"C": 10.0}, run="a")
    run_template(task, tmp_path, "nb", {"alpha": 1.0}, run="b", setup=False)
    done, out = ensemble(tmp_path, ["a", "b"])
    assert done.returncode == 0, done.stderr[-2000:]
    a, b, e = (pd.read_csv(tmp_path / "experiments" / r / "oof.csv") for r in ("a", "b", "ens"))
    mean = (a[task.target_columns].to_numpy() + b[task.target_columns].to_numpy()) / 2
    assert np.allclose(e[task.target_columns].to_numpy(), mean / mean.sum(axis=1, keepdims=True), atol=1e-6)
    assert task.grade(out / "submission.csv").valid_submission
    missing, _ = ensemble(tmp_path, ["a", "nowhere"], name="ens2")
    assert missing.returncode != 0 and "run 'nowhere' has no oof.csv" in missing.stderr.splitlines()[-1]
    escape, _ = ensemble(tmp_path, ["a", "../../task"], name="ens3")
    assert escape.returncode != 0 and "no paths" in escape.stderr.splitlines()[-1]
