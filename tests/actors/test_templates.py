"""The baseline's pipeline (actors/templates/train.py + taskdata.py) on every shape of
data: run as an experiment runs it (from experiments/<run>/ of a project folder holding
task/ and code/), its submission graded by ``Task.grade``. Also the analyse step's
analysis/data.md, written by the real agent loop driven by the baseline."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from actors.agent import Agent, Subtask
from actors.baseline import GRIDS, TEMPLATES, BaselineLLM
from benchmarks.mlebench.task import Task, shipped_tasks
from cluster.tasks import import_task
from tests.benchmarks import folders


def run_template(task: Task, work: Path, model: str, params: dict | None = None, run: str = "r",
                 setup: bool = True) -> tuple[dict, Path]:
    """``python ../../code/train.py`` in ``work/experiments/<run>`` with the task's public
    files in ``work/task`` (as on the bus; ``setup=False``: already there); returns
    metrics.json and the submission."""
    if setup:
        shutil.copytree(task.public_dir, work / "task")
        (work / "task" / "task.json").write_text(task.summary_json())
        (work / "code").mkdir()
        for path, src in TEMPLATES.items():
            shutil.copy(src, work / path)
    folder = work / "experiments" / run
    folder.mkdir(parents=True)
    done = subprocess.run([sys.executable, "../../code/train.py", "--model", model, "--params", json.dumps(params or {})],
                          cwd=folder, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((folder / "metrics.json").read_text()), folder / "submission.csv"


# (builder, model, the data kind derived, a score the model must beat: better than the prior)
CASES = {
    "text-classes": ("tfidf-logreg", {"C": 10.0}, "text", lambda s: s < 0.8),  # prior: ln 3 = 1.10
    "text-labels": ("tfidf-logreg", {"C": 10.0}, "text", lambda s: s > 0.7),
    "table-values": ("forest", {"n_estimators": 50}, "tabular", lambda s: s < 0.2),
    "images-labels": ("logreg", {"C": 0.1}, "images", lambda s: s < 0.8),
    "images-extension": ("logreg", {"C": 0.1}, "images", lambda s: s > 0.7),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_pipeline_submits_a_valid_scored_submission_on_each_shape(tmp_path, name):
    model, params, kind, good = CASES[name]
    task = Task(folders.BUILDERS[name](tmp_path / "data"))
    assert task.data.kind == kind
    metrics, submission = run_template(task, tmp_path / "p", model, params)
    grade = task.grade(submission)
    assert grade.valid_submission, grade.reason
    assert good(grade.score) and good(metrics["cv_score"]), (grade.score, metrics)


@pytest.mark.parametrize("name, model, params", [("docstrings", "tfidf-logreg", {"C": 10.0}),
                                                  ("glyphs", "knn", {"n_neighbors": 25, "size": 14})])
@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
def test_the_pipeline_beats_the_prior_on_the_new_shipped_tasks(tmp_path, name, model, params):
    task = Task(shipped_tasks()[name])
    _, submission = run_template(task, tmp_path, model, params)
    grade = task.grade(submission)
    prior = math.log(len(task.target_columns))  # the uniform prior's multi-class log loss
    assert grade.valid_submission and grade.score < prior, grade


def test_every_grid_names_models_the_pipeline_has():
    source = TEMPLATES["code/train.py"].read_text()
    for (data, kind), grid in GRIDS.items():
        for model, _ in grid:
            assert f'"{model}"' in source, (data, kind, model)


def test_the_analysis_names_the_real_columns_and_data_kind(bus, tmp_path):
    task = Task(folders.text_classes(tmp_path))
    import_task(bus, task, "p")
    Agent(bus, BaselineLLM()).run("p", Subtask(id="analyse-1", role="analyst", goal="Understand the task"))
    text = bus.project("p").as_role("viewer").read("analysis/data.md")
    assert "Data kind: text." in text and "Id column: `id`" in text
    for needle in ("`New York, N.Y.`", "`Mrs. O'Brien`", "`x/y (z)`", "`writer`", "`passage`", "task/train.csv"):
        assert needle in text, (needle, text)
    assert "`target`" not in text
