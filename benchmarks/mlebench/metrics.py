"""The metrics that MLE-bench Lite's graders compute, each with its direction.

Seven metrics cover the graders of all 22 Lite competitions (the table is in
docs/mlebench-metrics.md; which competition uses which is in
``benchmarks.mlebench.competitions``). A metric here is pure arithmetic on aligned
arrays: the checks that make a submission gradable (ids, columns, ranges) come before,
in ``benchmarks.mlebench.submission``.

- Arrays are 2-D, ``(rows, columns)``: a metric over several target columns is the mean
  of the per-column values (jigsaw, plant-pathology and RANZCR average ROC AUC over
  their label columns; nomad2018 averages RMSLE over its two targets). One column is the
  plain metric, so ``auc-roc`` over one column and ``mean-column-wise-roc-auc`` are the
  same arithmetic, and MLE-bench's names for them are aliases here.
- The direction comes from the metric's definition (MLE-bench's ``is_lower_better``; it
  reads it from the order of the leaderboard file instead, which a file sorted the
  other way gets wrong).
- Log loss clips probabilities to ``[eps, 1 - eps]`` (``eps`` of float64) and does not
  re-normalise rows, as the ``log_loss`` that MLE-bench's graders call does from
  scikit-learn 1.5 (MLE-bench's minimum) on; 1.3 and 1.4 re-normalised. The graders
  accept rows that sum to one within 1e-6, so the two differ below the 5-decimal rounding.

The implementations are our own (rank statistics for ROC AUC, a confusion matrix for
kappa); tests compare each against scikit-learn on random inputs.

Example::

    >>> m = metric_by_name("auc-roc")
    >>> m.score([[0], [1], [1]], [[0.1], [0.4], [0.8]])
    1.0
    >>> m.is_lower_better, m.better(0.9, 0.8)
    (False, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import total_ordering
from typing import Callable

import numpy as np

__all__ = ["Metric", "Score", "METRICS", "ALIASES", "metric_by_name", "UnknownMetric"]

_EPS = float(np.finfo(np.float64).eps)  # scikit-learn's log-loss clip for float64 input


class UnknownMetric(KeyError):
    """No metric has that name; the message lists the known names."""


def _columns(a) -> np.ndarray:
    """``a`` as a 2-D array: one column when given a 1-D one."""
    arr = np.asarray(a)
    return arr.reshape(-1, 1) if arr.ndim == 1 else arr


def _auc_column(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """ROC AUC of one column: the probability that a random positive outranks a random
    negative, ties counting half (the Mann-Whitney U statistic over average ranks)."""
    positive = y_true.astype(float) == 1.0
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both classes in the answers; this column has only one")
    # Here, not at the top: scipy.stats takes 0.5 s to import, and every aisci process imports this module.
    from scipy.stats import rankdata

    ranks = rankdata(y_score.astype(float))  # ties share their average rank
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def _roc_auc(y_true, y_score) -> float:
    t, s = _columns(y_true), _columns(y_score)
    return float(np.mean([_auc_column(t[:, j], s[:, j]) for j in range(t.shape[1])]))


def _log_loss_of_rows(onehot: np.ndarray, proba: np.ndarray) -> float:
    p = np.clip(proba.astype(float), _EPS, 1 - _EPS)  # a certain wrong answer costs -log(eps), not inf
    return float(-np.mean(np.sum(onehot * np.log(p), axis=1)))


def _binary_log_loss(y_true, y_pred) -> float:
    """One probability column: the probability of the positive class (label 1)."""
    t, p = _columns(y_true)[:, 0].astype(float), _columns(y_pred)[:, 0].astype(float)
    return _log_loss_of_rows(np.stack([1 - t, t], axis=1), np.stack([1 - p, p], axis=1))


def _multiclass_log_loss(y_true, y_pred) -> float:
    """One-hot answers, one probability column per class (same order)."""
    return _log_loss_of_rows(_columns(y_true).astype(float), _columns(y_pred))


def _quadratic_weighted_kappa(y_true, y_pred) -> float:
    """Cohen's kappa with quadratic weights over the labels seen in either column; a
    label's weight position is its rank among those labels (as scikit-learn's
    ``cohen_kappa_score``, which MLE-bench calls)."""
    t, p = _columns(y_true)[:, 0], _columns(y_pred)[:, 0]
    labels, codes = np.unique(np.concatenate([t, p]), return_inverse=True)
    k, n = len(labels), len(t)
    observed = np.zeros((k, k))
    np.add.at(observed, (codes[:n], codes[n:]), 1)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    idx = np.arange(k)
    weights = (idx[:, None] - idx[None, :]) ** 2
    denominator = np.sum(weights * expected)
    if denominator == 0:  # a single label everywhere: kappa is undefined (sklearn: nan)
        return float("nan")
    return float(1 - np.sum(weights * observed) / denominator)


def _rmse(y_true, y_pred) -> float:
    t, p = _columns(y_true).astype(float), _columns(y_pred).astype(float)
    return float(np.mean(np.sqrt(np.mean((t - p) ** 2, axis=0))))


def _rmsle(y_true, y_pred) -> float:
    t, p = _columns(y_true).astype(float), _columns(y_pred).astype(float)
    return float(np.mean(np.sqrt(np.mean((np.log1p(t) - np.log1p(p)) ** 2, axis=0))))


def _accuracy(y_true, y_pred) -> float:
    t, p = _columns(y_true), _columns(y_pred)
    return float(np.mean(np.all(t == p, axis=1)))


@total_ordering
@dataclass(frozen=True)
class Score:
    """A metric's value with its direction: ``a > b`` means ``a`` is the better score,
    whichever way the metric runs (AIDE's ``MetricValue``)."""

    value: float
    is_lower_better: bool

    def __lt__(self, other: Score) -> bool:
        if self.is_lower_better != other.is_lower_better:
            raise ValueError("cannot compare scores of metrics that run in opposite directions")
        return self.value > other.value if self.is_lower_better else self.value < other.value

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Score) and self.is_lower_better == other.is_lower_better
                and self.value == other.value)

    def __hash__(self) -> int:
        return hash((self.value, self.is_lower_better))


@dataclass(frozen=True)
class Metric:
    """A metric of MLE-bench's, by its grader name.

    Attributes:
        name: MLE-bench's ``grader.name`` (the first spelling, where config.yaml files
            spell it several ways; see ``ALIASES``).
        is_lower_better: the direction, from the definition.
        predicts: what a submission's target cells hold: ``probability`` (a finite
            number; in [0, 1] where the competition's grader asks), ``label`` (a class,
            compared with the answers' label) or ``value`` (a finite number).
        fn: ``fn(y_true, y_pred) -> float`` on aligned arrays, ``(rows, columns)``.
        bounds: the scores the metric can give, (lowest, highest), from its definition
            (a target outside them can never be reached).
    """

    name: str
    is_lower_better: bool
    predicts: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    bounds: tuple[float, float] = (float("-inf"), float("inf"))

    def score(self, y_true, y_pred) -> float:
        """The metric of aligned ``y_pred`` against ``y_true`` (not rounded).

        Raises:
            ValueError: the answers make the metric undefined (e.g. ROC AUC on a column
                with one class): a fault of the answers, not of the submission.
        """
        return self.fn(np.asarray(y_true), np.asarray(y_pred))

    def better(self, a: float, b: float) -> bool:
        """Whether score ``a`` is strictly better than ``b`` by this metric's direction."""
        return Score(a, self.is_lower_better) > Score(b, self.is_lower_better)

    def worst(self) -> float:
        """A value worse than any real score (for ordering runs with no valid score)."""
        return float("inf") if self.is_lower_better else float("-inf")


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("auc-roc", False, "probability", _roc_auc, (0.0, 1.0)),
    Metric("log-loss", True, "probability", _binary_log_loss, (0.0, float("inf"))),
    Metric("multi-class-log-loss", True, "probability", _multiclass_log_loss, (0.0, float("inf"))),
    Metric("quadratic-weighted-kappa", False, "label", _quadratic_weighted_kappa, (-1.0, 1.0)),
    Metric("root-mean-squared-error", True, "value", _rmse, (0.0, float("inf"))),
    Metric("mean-column-wise-rmsle", True, "value", _rmsle, (0.0, float("inf"))),
    Metric("accuracy", False, "label", _accuracy, (0.0, 1.0)),
)}

# Other spellings of the same arithmetic in MLE-bench's config.yaml files.
ALIASES: dict[str, str] = {
    "column-wise ROC AUC": "auc-roc",  # jigsaw-toxic-comment-classification-challenge
    "mean-column-wise-roc-auc": "auc-roc",  # plant-pathology-2020-fgvc7
    "root_mean_squared_error": "root-mean-squared-error",  # denoising-dirty-documents
    "multi-class-classification-accuracy": "accuracy",  # tabular-playground-series-dec-2021
}


def metric_by_name(name: str) -> Metric:
    """The metric a ``grader.name`` (MLE-bench's config.yaml) names, or an alias of it.

    Raises:
        UnknownMetric: no such name; the message lists the known ones.
    """
    canonical = ALIASES.get(name, name)
    if canonical not in METRICS:
        known = ", ".join(sorted(set(METRICS) | set(ALIASES)))
        raise UnknownMetric(f"no metric named {name!r}; known: {known} (give --metric with one of them)")
    return METRICS[canonical]
