"""Tasks in MLE-bench's format, and grading a submission against the private answers.

A task folder (``benchmarks/tasks/<id>/``, or any prepared MLE-bench competition laid
out the same way)::

    task.yaml              id, metric, id and target columns
    description.md         the task statement an agent reads
    leaderboard.csv        a `score` column (medals: benchmarks.grading.medals); optional:
                           without it a task is graded without medals
    prepared/public/       train.csv, test.csv, sample_submission.csv (and any folders,
                           e.g. images): what agents see
    prepared/private/      answers.csv: never copied onto the bus, never seen by a run,
                           never installed

``Task(folder)`` checks the folder whole before anything runs (``InvalidTask``, one
line that says what is missing). Grading compares values, not spellings: a
submission's labels are read as the answers' type (``6.0`` is the class ``6``; ``6.5``
is not a class), and a submission that cannot be scored is invalid with a reason that
says what to change; NaN or infinite predictions are invalid.

The shipped tasks' answers live in the checkout only (pyproject.toml installs
``prepared/public`` and nothing of ``prepared/private``): from a non-editable install a
shipped task is refused before it runs, with the reason.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, Field, ValidationError

from . import medals

METRICS = ("accuracy", "roc_auc", "rmse")
LOWER_IS_BETTER = {"rmse"}  # the direction of each metric (MLE-bench's is_lower_better), from its definition


class InvalidSubmission(Exception):
    """The submission cannot be graded; the message says why."""


class InvalidTask(ValueError):
    """The task folder is incomplete or malformed; the message says what to fix."""


MAX_SUBMISSION_BYTES = 512 * 1024 * 1024  # bigger than any answers file we grade, by far

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
    gold_threshold: float | None = Field(default=None, description="None without a leaderboard (no medals).")
    silver_threshold: float | None = None
    bronze_threshold: float | None = None
    median_threshold: float | None = None
    lower_is_better: bool
    leaderboard_size: int = 0


def _metric(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if name == "accuracy":
        return float(np.mean(y_true == y_pred))
    if name == "rmse":
        return float(math.sqrt(np.mean((y_true.astype(float) - y_pred.astype(float)) ** 2)))
    if name == "roc_auc":
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(y_true, y_pred.astype(float)))
    raise ValueError(f"unknown metric {name!r}; known: {METRICS}")


def _as_answers(values: pd.Series, like: pd.Series, column: str) -> pd.Series:
    """``values`` read as the type of ``like`` (the answers' column), so that ``6``,
    ``6.0`` and ``"6"`` are one label. Raises ``InvalidSubmission`` naming a bad value."""
    if pd.api.types.is_numeric_dtype(like):
        numbers = pd.to_numeric(values, errors="coerce")
        bad = values[numbers.isna() | ~np.isfinite(numbers.astype(float))]
        if len(bad):
            raise InvalidSubmission(f"column {column!r} must hold finite numbers; e.g. row {bad.index[0] + 1} "
                                    f"holds {bad.iloc[0]!r}")
        if pd.api.types.is_integer_dtype(like):
            fractional = numbers[numbers != np.round(numbers)]
            if len(fractional):
                raise InvalidSubmission(f"column {column!r} holds whole numbers (like {like.iloc[0]}); e.g. row "
                                        f"{fractional.index[0] + 1} holds {fractional.iloc[0]!r}")
            return numbers.astype("int64")
        return numbers.astype(float)
    return values.astype(str).str.strip()


class Task:
    def __init__(self, root: str | Path):
        """A task folder, checked whole (``InvalidTask`` names what is missing)."""
        self.root = Path(root).resolve()  # absolute: runs on other nodes and in other folders use it
        if not (self.root / "task.yaml").is_file():
            raise InvalidTask(f"{self.root} is not a task folder: it has no task.yaml (see benchmarks/grading/task.py)")
        try:
            self.spec = TaskSpec.model_validate(yaml.safe_load((self.root / "task.yaml").read_text()))
        except (yaml.YAMLError, ValidationError) as e:
            raise InvalidTask(f"{self.root / 'task.yaml'}: {str(e).splitlines()[0]}") from None
        self.public_dir = self.root / "prepared" / "public"
        self.private_dir = self.root / "prepared" / "private"
        needed = [self.root / "description.md", self.public_dir / "sample_submission.csv",
                  self.private_dir / "answers.csv"]
        missing = [str(p.relative_to(self.root)) for p in needed if not p.is_file()]
        if missing:
            installed = "site-packages" in self.root.parts or "dist-packages" in self.root.parts
            raise InvalidTask(f"task {self.root} lacks {', '.join(missing)}: a task needs its statement, a sample "
                              "submission and the private answers it is graded on" + (
                                  " (an installed aisci does not ship the shipped tasks' answers: run from a "
                                  "checkout, `pip install -e .`)" if installed else ""))
        self._check_leaderboard()

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

    def _check_leaderboard(self) -> None:
        path = self.root / "leaderboard.csv"
        if not path.is_file():
            return
        try:
            scores = pd.read_csv(path)["score"].astype(float)
        except (KeyError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise InvalidTask(f"{path}: needs a numeric `score` column ({e})") from None
        if scores.empty or not np.isfinite(scores).all():
            raise InvalidTask(f"{path}: its `score` column must be finite numbers, one per team")

    def leaderboard(self) -> list[float] | None:
        """The leaderboard's scores, best first by the metric's direction; None without one."""
        path = self.root / "leaderboard.csv"
        if not path.is_file():
            return None
        return sorted(pd.read_csv(path)["score"].astype(float).tolist(), reverse=not self.is_lower_better)

    def score(self, submission: pd.DataFrame) -> float:
        """The metric of ``submission`` against the answers; ``InvalidSubmission`` if it
        cannot be graded (missing columns, wrong or duplicate ids, empty or mistyped
        values, NaN or infinite predictions)."""
        answers = pd.read_csv(self.private_dir / "answers.csv")
        idc, target = self.spec.id_column, self.spec.target_column
        missing = [c for c in (idc, target) if c not in submission.columns]
        if missing:
            raise InvalidSubmission(f"missing column(s) {missing}; expected the columns of sample_submission.csv")
        if submission[target].isna().any():
            raise InvalidSubmission(f"empty values in column {target!r}")
        ids = _as_answers(submission[idc], answers[idc], idc)
        if ids.duplicated().any():
            raise InvalidSubmission(f"duplicate ids in column {idc!r}")
        if len(submission) != len(answers) or set(ids) != set(answers[idc]):
            raise InvalidSubmission(f"the ids must be exactly those of test.csv ({len(answers)} rows); got "
                                    f"{len(submission)} rows, {len(set(ids) - set(answers[idc]))} unknown ids")
        # Predictions are read as the answers' type, except probabilities (ROC AUC ranks scores).
        like = pd.Series([0.5]) if self.spec.metric == "roc_auc" else answers[target]
        predicted = pd.Series(_as_answers(submission[target], like, target).to_numpy(), index=ids)
        y_pred = predicted.loc[answers[idc]].to_numpy()
        try:
            return round(_metric(self.spec.metric, answers[target].to_numpy(), y_pred), 5)
        except (ValueError, TypeError) as e:
            raise InvalidSubmission(f"cannot compute {self.spec.metric}: {e}") from None

    def grade(self, submission_csv: str | Path | None) -> Grade:
        score, reason = None, ""
        path = Path(submission_csv) if submission_csv is not None else None
        if not self.has_answers:  # (checked when the task is opened; gone since)
            reason = f"not graded: the task's answers are no longer at {self.private_dir / 'answers.csv'}"
        elif path is None or not path.is_file():
            reason = "no submission file"
        elif path.stat().st_size > MAX_SUBMISSION_BYTES:
            reason = f"the submission is {path.stat().st_size // 2**20} MB: larger than any answers file"
        else:
            try:
                score = self.score(pd.read_csv(path))
            except InvalidSubmission as e:
                reason = str(e)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
                reason = f"not a readable CSV: {str(e).splitlines()[0][:200]}"
        board = self.leaderboard()
        if board is None:
            return Grade(task=self.id, score=score, valid=score is not None, reason=reason,
                         lower_is_better=self.is_lower_better)
        r = medals.rank(score, board, self.is_lower_better)
        return Grade(task=self.id, score=score, valid=score is not None, reason=reason, medal=r.medal,
                     above_median=r.above_median, gold_threshold=r.gold_threshold, silver_threshold=r.silver_threshold,
                     bronze_threshold=r.bronze_threshold, median_threshold=r.median_threshold,
                     lower_is_better=r.lower_is_better, leaderboard_size=len(board))


def shipped_tasks() -> dict[str, Path]:
    """The tasks that ship with the package (benchmarks/tasks/<id>/)."""
    base = Path(__file__).resolve().parent.parent / "tasks"
    return {p.name: p for p in sorted(base.iterdir()) if (p / "task.yaml").is_file()}
