"""Tasks in MLE-bench's format, and grading a submission against the private answers.

A task folder (``benchmarks/tasks/<id>/``, or any prepared MLE-bench competition laid
out the same way)::

    task.yaml              id, metric, id and target columns
    description.md         the task statement an agent reads
    leaderboard.csv        a `score` column, best first (medals: benchmarks.grading.medals)
    prepared/public/       train.csv, test.csv, sample_submission.csv: what agents see
    prepared/private/      answers.csv: never copied onto the bus, never installed

The shipped tasks' answers live in the checkout only (pyproject.toml installs
``prepared/public`` and nothing of ``prepared/private``): from a non-editable install a
task grades as "not graded" with the reason, instead of crashing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, Field

from . import medals

METRICS = ("accuracy", "roc_auc", "rmse")
LOWER_IS_BETTER = {"rmse"}  # the direction of each metric (MLE-bench's is_lower_better), from its definition


class InvalidSubmission(Exception):
    """The submission cannot be graded; the message says why."""


class TaskSpec(BaseModel):
    id: str
    metric: Literal["accuracy", "roc_auc", "rmse"]
    id_column: str = "id"
    target_column: str = "target"
    kind: Literal["classification", "regression"]


class Grade(BaseModel):
    task: str
    score: float | None = Field(description="None when the submission is missing or invalid.")
    valid: bool
    reason: str = ""
    medal: str = "none"
    above_median: bool = False
    gold_threshold: float
    silver_threshold: float
    bronze_threshold: float
    median_threshold: float
    lower_is_better: bool
    leaderboard_size: int


def _metric(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if name == "accuracy":
        return float(np.mean(y_true.astype(str) == y_pred.astype(str)))
    if name == "rmse":
        return float(math.sqrt(np.mean((y_true.astype(float) - y_pred.astype(float)) ** 2)))
    if name == "roc_auc":
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(y_true.astype(int), y_pred.astype(float)))
    raise ValueError(f"unknown metric {name!r}; known: {METRICS}")


class Task:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()  # absolute: runs on other nodes and in other folders use it
        if not (self.root / "task.yaml").is_file():
            raise FileNotFoundError(f"{self.root} is not a task folder (no task.yaml); see benchmarks/grading/task.py")
        self.spec = TaskSpec.model_validate(yaml.safe_load((self.root / "task.yaml").read_text()))
        self.public_dir = self.root / "prepared" / "public"
        self.private_dir = self.root / "prepared" / "private"

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def is_lower_better(self) -> bool:
        """The metric's direction, from the metric itself (not from the leaderboard)."""
        return self.spec.metric in LOWER_IS_BETTER

    @property
    def has_answers(self) -> bool:
        """Whether the private answers are here (not in a non-editable install)."""
        return (self.private_dir / "answers.csv").is_file()

    def leaderboard(self) -> list[float]:
        return pd.read_csv(self.root / "leaderboard.csv")["score"].astype(float).tolist()

    def score(self, submission: pd.DataFrame) -> float:
        """The metric of ``submission`` against the answers; ``InvalidSubmission`` if it
        cannot be graded (missing columns, wrong or duplicate ids, empty values)."""
        answers = pd.read_csv(self.private_dir / "answers.csv")
        idc, target = self.spec.id_column, self.spec.target_column
        missing = [c for c in (idc, target) if c not in submission.columns]
        if missing:
            raise InvalidSubmission(f"missing column(s) {missing}; expected the columns of sample_submission.csv")
        if submission[idc].duplicated().any():
            raise InvalidSubmission(f"duplicate ids in column {idc!r}")
        if len(submission) != len(answers) or set(submission[idc]) != set(answers[idc]):
            raise InvalidSubmission(f"the ids must be exactly those of test.csv ({len(answers)} rows); got {len(submission)}")
        if submission[target].isna().any():
            raise InvalidSubmission(f"empty values in column {target!r}")
        merged = answers.merge(submission[[idc, target]], on=idc, suffixes=("_true", "_pred"))
        try:
            return round(_metric(self.spec.metric, merged[f"{target}_true"].to_numpy(), merged[f"{target}_pred"].to_numpy()), 5)
        except (ValueError, TypeError) as e:
            raise InvalidSubmission(f"cannot compute {self.spec.metric}: {e}") from None

    def grade(self, submission_csv: str | Path | None) -> Grade:
        score, reason = None, ""
        if not self.has_answers:
            reason = (f"not graded: the task's answers are not at {self.private_dir / 'answers.csv'} (an installed "
                      f"package does not ship them): grade from a checkout (pip install -e) or a prepared task folder")
        elif submission_csv is None or not Path(submission_csv).is_file():
            reason = "no submission file"
        else:
            try:
                score = self.score(pd.read_csv(submission_csv))
            except InvalidSubmission as e:
                reason = str(e)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
                reason = f"not a readable CSV: {e}"
        board = self.leaderboard()
        r = medals.rank(score, board)
        return Grade(task=self.id, score=score, valid=score is not None, reason=reason, medal=r.medal,
                     above_median=r.above_median, gold_threshold=r.gold_threshold, silver_threshold=r.silver_threshold,
                     bronze_threshold=r.bronze_threshold, median_threshold=r.median_threshold,
                     lower_is_better=r.lower_is_better, leaderboard_size=len(board))


def shipped_tasks() -> dict[str, Path]:
    """The tasks that ship with the package (benchmarks/tasks/<id>/)."""
    base = Path(__file__).resolve().parent.parent / "tasks"
    return {p.name: p for p in sorted(base.iterdir()) if (p / "task.yaml").is_file()}
