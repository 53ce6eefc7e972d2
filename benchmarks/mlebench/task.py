"""A task is an MLE-bench competition folder; grading a submission against its answers.

The folder (``benchmarks/mlebench/tasks/<id>/``, any competition laid out as MLE-bench lays it
out, or ``benchmarks.mlebench.layout.locate`` of MLE-bench's data dir)::

    config.yaml            MLE-bench's competition config: id, grader.name, dataset.answers,
                           dataset.sample_submission (paths relative to the data dir: <id>/...)
    description.md         the task statement an agent reads (or prepared/public/description.md,
                           where MLE-bench's prepare puts a copy)
    leaderboard.csv        a `score` column (medals: benchmarks.mlebench.medals); optional:
                           without it a task is graded without medals
    prepared/public/       what agents see: anything (CSVs, image folders, text)
    prepared/private/      the answers: never copied onto the bus, never seen by a run,
                           never installed

Everything the baseline and the grader need is derived, never written by hand: the
metric and its direction from ``grader.name`` (``benchmarks.mlebench.metric_by_name``;
for the 22 Lite competitions, that competition's own grader with its rules); the id
column (the first) and the target columns (the rest) from ``sample_submission.csv``;
the kind of prediction (labels, probabilities or values) from the metric. What cannot
be derived is an ``InvalidTask`` saying which option to give (``metric=``,
``id_column=``: ``--metric``, ``--id-column`` on ``aisci run``).

``Task(folder)`` checks the folder whole before anything runs (one line that says what
is missing). Grading follows MLE-bench's graders (``benchmarks.mlebench``): a
submission that cannot be scored is invalid with a reason that says what to change.

The shipped tasks' answers live in the checkout only (pyproject.toml installs
``prepared/public`` and nothing of ``prepared/private``): from a non-editable install a
shipped task is refused before it runs, with the reason.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from . import (
    COMPETITIONS,
    Competition,
    InvalidSubmission,
    UnknownMetric,
    medals,
    metric_by_name,
    read_csv,
)
from .data import DataSpec, derive_data
from .layout import CompetitionConfig, InvalidTask, locate
from .report import CompetitionReport

__all__ = ["CompetitionReport", "DataSpec", "InvalidSubmission", "InvalidTask", "Task", "TaskOptions", "shipped_tasks"]

MAX_SUBMISSION_BYTES = 512 * 1024 * 1024  # bigger than any answers file we grade, by far


class TaskOptions(BaseModel):
    """What a user may give where the folder does not say it (``aisci run`` flags)."""

    config: str | None = Field(default=None, description="--config: the competition's config.yaml, where the "
                               "folder has none (MLE-bench keeps it in its package).")
    leaderboard: str | None = Field(default=None, description="--leaderboard: its leaderboard.csv.")
    metric: str | None = Field(default=None, description="--metric: the metric, where grader.name is not one "
                               "we know (benchmarks.mlebench.METRICS or an alias).")
    id_column: str | None = Field(default=None, description="--id-column: the sample submission's id column, "
                                  "where it is not the first.")
    data_dir: str | None = Field(default=None, description="--data-dir: MLE-bench's data dir; the task is then "
                                 "a competition id.")


class Task:
    def __init__(self, root: str | Path, options: TaskOptions | None = None):
        """A competition folder, checked whole.

        Raises:
            InvalidTask: a part is missing or malformed, or what the baseline and the
                grader need cannot be derived (the message names the flag to give).
        """
        self.options = options or TaskOptions()
        self.root = Path(root).resolve()  # absolute: runs on other nodes and in other folders use it
        config = Path(self.options.config).expanduser() if self.options.config else None
        if config is None and (self.root / "config.yaml").is_file():
            config = self.root / "config.yaml"
        if config is not None:
            self.config = CompetitionConfig.load(config)
        elif self.root.name in COMPETITIONS and (self.root / "prepared").is_dir():  # our registry stands in
            self.config = CompetitionConfig.of_lite(self.root.name)
        else:
            raise InvalidTask(f"{self.root} is not a task folder: it has no config.yaml (MLE-bench's competition "
                              "config; give it with --config; the README's 'Task folders' shows the layout)")
        self.public_dir = self.root / "prepared" / "public"
        self.private_dir = self.root / "prepared" / "private"
        self.answers_path = self.config.in_folder(self.root, self.config.dataset.answers)
        self.sample_path = self.config.in_folder(self.root, self.config.dataset.sample_submission)
        home = config.parent if config is not None else self.root
        self.description_path = next((p for p in (self.root / "description.md", self.public_dir / "description.md",
                                                  home / "description.md") if p.is_file()), self.root / "description.md")
        board = self.options.leaderboard or next(
            (p for p in (self.root / "leaderboard.csv", home / "leaderboard.csv") if p.is_file()), None)
        self.leaderboard_path = Path(board).expanduser() if board else None
        needed = [self.description_path, self.sample_path, self.answers_path]
        missing = [str(p.relative_to(self.root)) if p.is_relative_to(self.root) else str(p)
                   for p in needed if not p.is_file()]
        if missing:
            installed = "site-packages" in self.root.parts or "dist-packages" in self.root.parts
            raise InvalidTask(f"task {self.root} lacks {', '.join(missing)}: a task needs its statement, a sample "
                              "submission and the private answers it is graded on" + (
                                  " (an installed aisci does not ship the shipped tasks' answers: run from a "
                                  "checkout, `pip install -e .`)" if installed else ""))
        try:
            self.competition = self._grader()
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise InvalidTask(f"{self.sample_path}: not a readable CSV ({unreadable(e)})") from None
        self._check_leaderboard()

    @classmethod
    def find(cls, competition_id: str, options: TaskOptions) -> Task:
        """A competition in MLE-bench's data dir (``options.data_dir``), found as
        ``benchmarks.mlebench.layout.locate`` finds it."""
        where = locate(competition_id, Path(options.data_dir or "."), Path(options.config) if options.config else None,
                       Path(options.leaderboard) if options.leaderboard else None)
        return cls(where.root, options.model_copy(update={
            "data_dir": None, "config": str(where.config) if where.config else None,
            "leaderboard": str(where.leaderboard) if where.leaderboard else None}))

    def _grader(self) -> Competition:
        """The competition's grader: the registry's for a Lite competition (its own rules),
        else one built from the metric's name and the sample submission's columns."""
        name = self.options.metric or self.config.grader.name
        known = COMPETITIONS.get(self.config.id)
        if known and not self.options.metric and not self.options.id_column:
            return known.model_copy(update={"answers": self.config.dataset.answers,
                                            "sample_submission": self.config.dataset.sample_submission})
        try:
            metric = metric_by_name(name)
        except UnknownMetric:
            known_names = ", ".join(sorted({"accuracy", "auc-roc", "log-loss", "multi-class-log-loss",
                                            "quadratic-weighted-kappa", "root-mean-squared-error",
                                            "mean-column-wise-rmsle"}))
            raise InvalidTask(f"{self.config.id}: grader {name!r} is not a metric we know; give --metric with one "
                              f"of {known_names}") from None
        columns = list(pd.read_csv(self.sample_path, nrows=0).columns)
        padded = [c for c in columns if c != c.strip()]
        if padded:  # "id, target": the graders and the answers name columns exactly, so it is never stripped here
            raise InvalidTask(f"{self.sample_path}: the column name {padded[0]!r} has spaces around it: write the "
                              f"header as {','.join(c.strip() for c in columns[:6])} (column names are matched exactly)")
        id_column = self.options.id_column or (columns[0] if columns else "")
        if id_column not in columns or len(columns) < 2:
            raise InvalidTask(f"{self.sample_path}: cannot tell its id column (columns {columns[:6]}): give "
                              "--id-column with the column that names each test row")
        if not self.options.id_column and read_csv(self.sample_path)[id_column].duplicated().any():
            raise InvalidTask(f"{self.sample_path}: its first column {id_column!r} repeats values, so it is not "
                              "the id column: give --id-column")
        targets = tuple(c for c in columns if c != id_column)
        return Competition(id=self.config.id, grader_name=self.config.grader.name, metric_name=metric.name,
                           id_column=id_column, target_columns=targets, n_targets=len(targets),
                           answers=self.config.dataset.answers, sample_submission=self.config.dataset.sample_submission)

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def metric(self):
        """The metric (``benchmarks.mlebench.Metric``), with its direction."""
        return self.competition.metric

    @property
    def is_lower_better(self) -> bool:
        """The metric's direction, from the metric itself (not from the leaderboard)."""
        return self.metric.is_lower_better

    @property
    def kind(self) -> str:
        """``regression`` where the metric scores values, else ``classification``."""
        return "regression" if self.metric.predicts == "value" else "classification"

    @property
    def has_answers(self) -> bool:
        """Whether the private answers are here (not in a non-editable install)."""
        return self.answers_path.is_file()

    @property
    def private_paths(self) -> tuple[Path, ...]:
        """What no run may see: the private folder, and the answers wherever they are."""
        return tuple(dict.fromkeys((self.private_dir, self.answers_path.parent)))

    @property
    def target_columns(self) -> list[str]:
        """The submission's scored columns, in the sample submission's order."""
        return self.competition.targets(read_csv(self.sample_path))

    @cached_property
    def data(self) -> DataSpec:
        """What the public data is (``tabular``, ``text`` or ``images``) and where a
        pipeline finds it (``benchmarks.mlebench.data``). Grading does not need it; a
        run of the baseline does.

        Raises:
            InvalidTask: it cannot be derived from the public files (says what is missing).
        """
        return derive_data(self.public_dir, self.sample_path, self.competition.id_column, self.target_columns,
                           self.metric.predicts)

    def summary(self) -> dict:
        """What the task asks, derived (``task/task.json`` on the bus: what agents and the
        baseline read; never an input): the metric and its direction, what the
        submission predicts, its id and target columns, ``sample_submission`` (the
        sample's path under ``prepared/public``, so ``task/<it>`` on the bus, or None
        where it is not public), and ``data`` (the kind: ``tabular``, ``text``,
        ``images``) with ``inputs`` (``DataSpec``'s fields: paths relative to
        ``task/``). Where the data cannot be derived, ``data`` and ``inputs`` are None
        and ``data_unknown`` says why (an agent may still make sense of it; the
        baseline refuses such a task before it starts)."""
        # Where the sample lies among the public files (None: MLE-bench keeps it private),
        # for the agents' own validity check (actors.submission).
        public = self.sample_path.relative_to(self.public_dir).as_posix() \
            if self.sample_path.is_relative_to(self.public_dir) else None
        out = {"competition_id": self.id, "metric": self.metric.name, "is_lower_better": self.is_lower_better,
               "predicts": self.metric.predicts, "kind": self.kind, "id_column": self.competition.id_column,
               "target_columns": self.target_columns, "sample_submission": public}
        try:
            out.update(data=self.data.kind, inputs=self.data.model_dump(exclude={"kind"}))
        except InvalidTask as e:
            out.update(data=None, inputs=None, data_unknown=str(e))
        return out

    def summary_json(self) -> str:
        return json.dumps(self.summary(), indent=1)

    def _check_leaderboard(self) -> None:
        path = self.leaderboard_path
        if path is None:
            return
        try:
            scores = pd.read_csv(path)["score"].astype(float)
        except (KeyError, ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise InvalidTask(f"{path}: needs a numeric `score` column ({e})") from None
        if scores.empty or not np.isfinite(scores).all():
            raise InvalidTask(f"{path}: its `score` column must be finite numbers, one per team")

    def leaderboard(self) -> list[float] | None:
        """The leaderboard's scores, best first by the metric's direction; None without one."""
        if self.leaderboard_path is None or not self.leaderboard_path.is_file():
            return None
        return sorted(pd.read_csv(self.leaderboard_path)["score"].astype(float).tolist(),
                      reverse=not self.is_lower_better)

    def score(self, submission: pd.DataFrame) -> float:
        """The metric of ``submission`` against the answers, rounded as MLE-bench rounds.

        Raises:
            InvalidSubmission: it cannot be graded (the reason says what to change).
        """
        try:
            return self.competition.grade(submission, read_csv(self.answers_path))
        except InvalidSubmission:
            raise
        except (ValueError, TypeError) as e:  # MLE-bench: any error while grading makes it invalid
            raise InvalidSubmission(f"cannot compute {self.metric.name}: {str(e).splitlines()[0][:200]}") from None

    def grade(self, submission_csv: str | Path | None) -> CompetitionReport:
        """The ``CompetitionReport`` of a submission file (never raises for a bad file)."""
        score, reason = None, ""
        path = Path(submission_csv) if submission_csv is not None else None
        exists = path is not None and path.is_file()
        if not self.has_answers:  # (checked when the task is opened; gone since)
            reason = f"not graded: the task's answers are no longer at {self.answers_path}"
        elif not exists:
            reason = "no submission file"
        elif path.stat().st_size > MAX_SUBMISSION_BYTES:
            reason = f"the submission is {path.stat().st_size // 2**20} MB: larger than any answers file"
        else:
            try:
                score = self.score(read_csv(path))
            except InvalidSubmission as e:
                reason = str(e)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
                reason = f"not a readable CSV: {str(e).splitlines()[0][:200]}"
        common = dict(competition_id=self.id, score=score, submission_exists=exists, valid_submission=score is not None,
                      reason=reason, is_lower_better=self.is_lower_better, metric=self.metric.name)
        board = self.leaderboard()
        if board is None:
            return CompetitionReport(**common)
        r = medals.rank(score, board, self.is_lower_better)
        return CompetitionReport(**common, gold_medal=r.gold_medal, silver_medal=r.silver_medal,
                                 bronze_medal=r.bronze_medal, above_median=r.above_median,
                                 gold_threshold=r.gold_threshold, silver_threshold=r.silver_threshold,
                                 bronze_threshold=r.bronze_threshold, median_threshold=r.median_threshold,
                                 leaderboard_size=len(board))


def unreadable(e: Exception) -> str:
    """Why a task's CSV cannot be read, in a few words, with what to do for text that is
    not UTF-8 (MLE-bench's files are UTF-8; pandas reads nothing else by default)."""
    if isinstance(e, UnicodeDecodeError):
        return f"not UTF-8 text at byte {e.start}: save the file as UTF-8"
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


def open_task(name_or_folder: str | Path, options: TaskOptions | None = None) -> Task:
    """A task folder, or with ``options.data_dir`` a competition id in MLE-bench's data dir."""
    options = options or TaskOptions()
    return Task.find(str(name_or_folder), options) if options.data_dir else Task(name_or_folder, options)


def shipped_tasks() -> dict[str, Path]:
    """The tasks that ship with the package (benchmarks/mlebench/tasks/<id>/)."""
    base = Path(__file__).resolve().parent / "tasks"
    return {p.name: p for p in sorted(base.iterdir()) if (p / "config.yaml").is_file()}
