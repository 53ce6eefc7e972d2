"""The graders of the 22 MLE-bench Lite competitions: which metric, over which columns,
with which checks; learnt from ``mlebench/competitions/<id>/grade.py`` and
``config.yaml`` in openai/mle-bench (commit 783b15a), re-written here.

A ``Competition`` grades a submission DataFrame against the answers DataFrame as that
competition's ``grade.py`` does, then rounds to 5 decimals as MLE-bench's ``Grader``
does. Where MLE-bench's grader leaves a hole, we close it and say so in
docs/mlebench-metrics.md ("Where we differ"): e.g. the taxi-fare and nomad2018 graders
never compare ids (nomad2018 pairs rows by position), and jigsaw pairs its label
columns by position; here every grader pairs rows by id and columns by name.

Example::

    >>> comp = competition("aerial-cactus-identification")
    >>> comp.metric.name, comp.is_lower_better, comp.id_column, comp.target_columns
    ('auc-roc', False, 'id', ('has_cactus',))
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from .metrics import Metric, metric_by_name
from .submission import check_submission, text_labels

__all__ = ["Competition", "COMPETITIONS", "LITE_IDS", "competition", "UnknownCompetition"]

SOURCE_COMMIT = "783b15a"  # the openai/mle-bench commit the rules were read from


class UnknownCompetition(KeyError):
    """No grader is registered for that competition id."""


class Competition(BaseModel):
    """One competition's grader."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="MLE-bench's competition id (config.yaml `id`).")
    grader_name: str = Field(description="config.yaml `grader.name`, as spelt there.")
    metric_name: str = Field(description="Our metric's name (benchmarks.mlebench.metrics.METRICS); "
                                         "differs from grader_name only where the config's name understates it "
                                         "(RANZCR's `auc-roc` is a mean over nine label columns).")
    id_column: str = Field(description="The column that pairs submission rows with answer rows.")
    target_columns: tuple[str, ...] | None = Field(
        description="The columns scored, in the answers; None: every answers column but the id "
                    "(the one-hot class columns of dog-breed and leaf: 120 and 99 classes).")
    n_targets: int = Field(description="How many target columns; checked against the answers.")
    exact_columns: bool = Field(default=False, description="The submission may hold no other column.")
    probabilities_in_range: bool = Field(default=True, description="Probability columns must lie in [0, 1] "
                                         "(MLE-bench's shared ROC AUC preparation checks; jigsaw's and "
                                         "plant-pathology's own graders do not).")
    skip_unlabelled: bool = Field(default=False, description="Drop answer rows whose labels are -1 "
                                  "(jigsaw: test rows Kaggle never scored).")
    answers: str = Field(description="config.yaml `dataset.answers`, relative to the data dir.")
    sample_submission: str = Field(description="config.yaml `dataset.sample_submission`.")

    @property
    def metric(self) -> Metric:
        return metric_by_name(self.metric_name)

    @property
    def is_lower_better(self) -> bool:
        return self.metric.is_lower_better

    @property
    def source(self) -> str:
        """Where the rule was read: the grader in openai/mle-bench."""
        return f"mlebench/competitions/{self.id}/grade.py"

    def targets(self, answers: pd.DataFrame) -> list[str]:
        """The scored columns, checked against ``answers``.

        Raises:
            ValueError: the answers lack them, or hold another number of classes: the
                answers file is not this competition's (a fault of the data, not of the
                submission).
        """
        names = list(self.target_columns) if self.target_columns is not None else \
            [c for c in answers.columns if c != self.id_column]
        missing = [c for c in [self.id_column, *names] if c not in answers.columns]
        if missing or len(names) != self.n_targets:
            raise ValueError(f"the answers of {self.id} must hold {self.id_column!r} and {self.n_targets} target "
                             f"column(s); missing {missing}, {len(names)} found: is this the competition's "
                             f"{self.answers}?")
        return names

    def check(self, submission: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
        """The submission's target columns in ``reference``'s row order, checked.
        ``reference`` is the answers, or the sample submission (same ids and columns).

        Raises:
            InvalidSubmission: what to change in the submission.
        """
        metric = self.metric
        return check_submission(
            submission, reference, id_column=self.id_column, target_columns=self.targets(reference),
            predicts=metric.predicts, exact_columns=self.exact_columns,
            probabilities_in_range=metric.predicts == "probability" and self.probabilities_in_range,
            rows_sum_to_one=metric.name == "multi-class-log-loss",
            non_negative=metric.name == "mean-column-wise-rmsle")

    def score(self, submission: pd.DataFrame, answers: pd.DataFrame) -> float:
        """The metric of ``submission`` against ``answers``, unrounded.

        Raises:
            InvalidSubmission: the submission cannot be graded (the reason says why).
            ValueError: the answers are not this competition's, or leave the metric
                undefined.
        """
        predicted = self.check(submission, answers)
        truth = answers.set_index(self.id_column)[list(predicted.columns)]
        if self.metric.predicts == "label":  # text labels compare as text on both sides (MLE-bench: astype(str))
            truth = truth.apply(lambda col: col if pd.api.types.is_numeric_dtype(col) else text_labels(col))
        if self.skip_unlabelled:
            keep = (truth.sum(axis=1) >= 0).to_numpy()
            truth, predicted = truth[keep], predicted[keep]
        return self.metric.score(truth.to_numpy(), predicted.to_numpy())

    def grade(self, submission: pd.DataFrame, answers: pd.DataFrame) -> float:
        """``score`` rounded to 5 decimals, as MLE-bench reports it."""
        return round(self.score(submission, answers), 5)


def _c(id: str, grader: str, id_column: str, targets: Sequence[str] | None, n: int | None = None,
       metric: str | None = None, answers: str = "prepared/private/test.csv",
       sample: str = "prepared/public/sample_submission.csv", **rules) -> Competition:
    return Competition(id=id, grader_name=grader, metric_name=metric or metric_by_name(grader).name,
                       id_column=id_column, target_columns=tuple(targets) if targets is not None else None,
                       n_targets=n if n is not None else len(targets), answers=f"{id}/{answers}",
                       sample_submission=f"{id}/{sample}", **rules)


_PRIVATE_ANSWERS = "prepared/private/answers.csv"
_JIGSAW = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
_PLANT = ("healthy", "multiple_diseases", "rust", "scab")
# MLE-bench scores nine of RANZCR's eleven label columns (its classes.py): not
# "CVC - Normal" nor "Swan Ganz Catheter Present".
_RANZCR = ("ETT - Abnormal", "ETT - Borderline", "ETT - Normal", "NGT - Abnormal", "NGT - Borderline",
           "NGT - Incompletely Imaged", "NGT - Normal", "CVC - Abnormal", "CVC - Borderline")

COMPETITIONS: dict[str, Competition] = {c.id: c for c in (
    _c("aerial-cactus-identification", "auc-roc", "id", ["has_cactus"]),
    _c("aptos2019-blindness-detection", "quadratic-weighted-kappa", "id_code", ["diagnosis"]),
    _c("denoising-dirty-documents", "root_mean_squared_error", "id", ["value"], answers=_PRIVATE_ANSWERS,
       sample="prepared/public/sampleSubmission.csv"),
    _c("detecting-insults-in-social-commentary", "auc-roc", "Comment", ["Insult"],
       sample="prepared/public/sample_submission_null.csv"),
    _c("dog-breed-identification", "multi-class-log-loss", "id", None, n=120),
    _c("dogs-vs-cats-redux-kernels-edition", "log-loss", "id", ["label"], answers=_PRIVATE_ANSWERS),
    _c("histopathologic-cancer-detection", "auc-roc", "id", ["label"], answers=_PRIVATE_ANSWERS),
    _c("jigsaw-toxic-comment-classification-challenge", "column-wise ROC AUC", "id", _JIGSAW,
       exact_columns=True, probabilities_in_range=False, skip_unlabelled=True),
    _c("leaf-classification", "multi-class-log-loss", "id", None, n=99, exact_columns=True),
    _c("mlsp-2013-birds", "auc-roc", "Id", ["Probability"], answers=_PRIVATE_ANSWERS),
    _c("new-york-city-taxi-fare-prediction", "root-mean-squared-error", "key", ["fare_amount"]),
    _c("nomad2018-predict-transparent-conductors", "mean-column-wise-rmsle", "id",
       ["formation_energy_ev_natom", "bandgap_energy_ev"]),
    _c("plant-pathology-2020-fgvc7", "mean-column-wise-roc-auc", "image_id", _PLANT, exact_columns=True,
       probabilities_in_range=False),
    _c("random-acts-of-pizza", "auc-roc", "request_id", ["requester_received_pizza"],
       sample="prepared/public/sampleSubmission.csv"),
    _c("ranzcr-clip-catheter-line-classification", "auc-roc", "StudyInstanceUID", _RANZCR),
    _c("siim-isic-melanoma-classification", "auc-roc", "image_name", ["target"]),
    _c("spooky-author-identification", "multi-class-log-loss", "id", ["EAP", "HPL", "MWS"], exact_columns=True),
    _c("tabular-playground-series-dec-2021", "multi-class-classification-accuracy", "Id", ["Cover_Type"]),
    _c("tabular-playground-series-may-2022", "auc-roc", "id", ["target"]),
    _c("text-normalization-challenge-english-language", "accuracy", "id", ["after"], answers=_PRIVATE_ANSWERS,
       sample="prepared/private/sample_submission.csv"),
    _c("text-normalization-challenge-russian-language", "accuracy", "id", ["after"], answers=_PRIVATE_ANSWERS,
       sample="prepared/private/sample_submission.csv"),
    _c("the-icml-2013-whale-challenge-right-whale-redux", "auc-roc", "clip", ["probability"],
       sample="prepared/public/sampleSubmission.csv"),
)}

LITE_IDS: tuple[str, ...] = tuple(COMPETITIONS)


def competition(competition_id: str) -> Competition:
    """The grader of an MLE-bench Lite competition.

    Raises:
        UnknownCompetition: not one of the 22 (the message says how to grade others).
    """
    try:
        return COMPETITIONS[competition_id]
    except KeyError:
        raise UnknownCompetition(f"no grader for {competition_id!r}: the registry covers the 22 MLE-bench Lite "
                                 "competitions (benchmarks.mlebench.LITE_IDS); for another, name its metric "
                                 "(benchmarks.mlebench.metric_by_name)") from None
