"""The MLE-bench Lite metrics against scikit-learn and hand computations on seeded random
inputs; every one of the 22 competitions' graders on synthetic answers, both directions.
(Invalid submissions: test_mlebench_submissions.py.)"""

import doctest

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

import benchmarks.mlebench as package
from benchmarks.mlebench import (
    ALIASES,
    COMPETITIONS,
    LITE_IDS,
    METRICS,
    Score,
    UnknownCompetition,
    UnknownMetric,
    competition,
    competitions,
    metric_by_name,
    metrics,
    submission,
)

# The 22 ids of MLE-bench Lite (issue 12, MLE-bench's experiments/splits/low.txt).
LITE = """aerial-cactus-identification aptos2019-blindness-detection denoising-dirty-documents
detecting-insults-in-social-commentary dog-breed-identification dogs-vs-cats-redux-kernels-edition
histopathologic-cancer-detection jigsaw-toxic-comment-classification-challenge leaf-classification mlsp-2013-birds
new-york-city-taxi-fare-prediction nomad2018-predict-transparent-conductors plant-pathology-2020-fgvc7
random-acts-of-pizza ranzcr-clip-catheter-line-classification siim-isic-melanoma-classification
spooky-author-identification tabular-playground-series-dec-2021 tabular-playground-series-may-2022
text-normalization-challenge-english-language text-normalization-challenge-russian-language
the-icml-2013-whale-challenge-right-whale-redux""".split()

SEEDS = [0, 1, 2]


# --- each metric against an independent implementation ---------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_roc_auc_matches_sklearn_with_ties_and_columns(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=(300, 4))
    s = np.round(rng.random((300, 4)) + 0.3 * y, 1)  # rounded: many ties
    auc = METRICS["auc-roc"]
    assert auc.score(y[:, 0], s[:, 0]) == pytest.approx(skm.roc_auc_score(y[:, 0], s[:, 0]), abs=1e-12)
    assert auc.score(y, s) == pytest.approx(skm.roc_auc_score(y, s, average="macro"), abs=1e-12)


def test_roc_auc_by_hand():
    # positives 0.4, 0.8; negatives 0.1, 0.4: pairs (0.4>0.1) 1, (0.4=0.4) 0.5, 1, 1 -> 3.5 / 4
    assert METRICS["auc-roc"].score([1, 1, 0, 0], [0.4, 0.8, 0.1, 0.4]) == 0.875
    with pytest.raises(ValueError, match="both classes"):
        METRICS["auc-roc"].score([1, 1], [0.2, 0.3])


@pytest.mark.parametrize("seed", SEEDS)
def test_log_losses_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    p = rng.random(200)
    p[:3] = [0.0, 1.0, 1.0]  # certain answers: clipped, not infinite
    assert METRICS["log-loss"].score(y, p) == pytest.approx(skm.log_loss(y, p), rel=1e-12)
    k = 5
    labels = rng.integers(0, k, 200)
    proba = rng.random((200, k)) ** 3
    proba /= proba.sum(axis=1, keepdims=True)
    onehot = np.eye(k)[labels]
    assert METRICS["multi-class-log-loss"].score(onehot, proba) == pytest.approx(
        skm.log_loss(labels, proba, labels=range(k)), rel=1e-9)


def test_log_loss_by_hand():
    # -(log 0.8 + log 0.6) / 2 for the true classes
    assert METRICS["log-loss"].score([1, 0], [0.8, 0.4]) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)


@pytest.mark.parametrize("seed", SEEDS)
def test_quadratic_weighted_kappa_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, 300)
    p = np.clip(y + rng.integers(-2, 3, 300), 0, 4)
    p[p == 3] = 2  # a label the predictions never use
    assert METRICS["quadratic-weighted-kappa"].score(y, p) == pytest.approx(
        skm.cohen_kappa_score(p, y, weights="quadratic"), abs=1e-12)


def test_quadratic_weighted_kappa_by_hand():
    # labels 0,1,2; observed: (0,0), (1,2), (2,1): weights 0, 1, 1 -> sum 2;
    # expected = outer([1,1,1], [1,1,1]) / 3: sum of weights (0+1+4)*2+ (1+0+1) = 12 -> 12/3 = 4
    assert METRICS["quadratic-weighted-kappa"].score([0, 1, 2], [0, 2, 1]) == pytest.approx(1 - 2 / 4)


@pytest.mark.parametrize("seed", SEEDS)
def test_regression_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.random((150, 2)) * 5
    p = np.abs(y + rng.normal(0, 0.5, (150, 2)))
    assert METRICS["root-mean-squared-error"].score(y[:, 0], p[:, 0]) == pytest.approx(
        skm.root_mean_squared_error(y[:, 0], p[:, 0]), rel=1e-12)
    expected = np.mean([skm.root_mean_squared_log_error(y[:, j], p[:, j]) for j in range(2)])
    assert METRICS["mean-column-wise-rmsle"].score(y, p) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_accuracy_matches_sklearn_on_numbers_and_text(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(1, 8, 250)
    p = np.where(rng.random(250) < 0.6, y, rng.integers(1, 8, 250))
    assert METRICS["accuracy"].score(y, p) == pytest.approx(skm.accuracy_score(y, p))
    words = np.array(["one", "two", "three", "sil", "<self>"], dtype=object)
    assert METRICS["accuracy"].score(words[y % 5], words[p % 5]) == pytest.approx(
        skm.accuracy_score(words[y % 5], words[p % 5]))


# --- names, directions, the registry ----------------------------------------------------

def test_the_registry_covers_exactly_the_22_lite_competitions():
    assert sorted(LITE_IDS) == sorted(LITE) and len(COMPETITIONS) == 22
    for cid, comp in COMPETITIONS.items():
        assert comp.id == cid and comp.source == f"mlebench/competitions/{cid}/grade.py"
        assert comp.answers.startswith(f"{cid}/prepared/") and comp.sample_submission.startswith(f"{cid}/prepared/")
        assert metric_by_name(comp.grader_name).is_lower_better == comp.is_lower_better  # the config's name agrees


def test_every_grader_name_maps_to_a_metric_with_its_direction():
    lower = {"log-loss", "multi-class-log-loss", "root-mean-squared-error", "root_mean_squared_error",
             "mean-column-wise-rmsle"}
    names = {c.grader_name for c in COMPETITIONS.values()}
    assert names == set(METRICS) | set(ALIASES)  # every name and alias is in use, none is missing
    for name in names:
        assert metric_by_name(name).is_lower_better == (name in lower), name
    assert competition("ranzcr-clip-catheter-line-classification").target_columns[-1] == "CVC - Borderline"
    with pytest.raises(UnknownMetric, match="known: accuracy"):
        metric_by_name("f1")
    with pytest.raises(UnknownCompetition, match="22 MLE-bench Lite"):
        competition("titanic")


def test_a_score_knows_which_way_is_better():
    assert Score(0.2, True) > Score(0.3, True) and Score(0.9, False) > Score(0.8, False)
    assert max([Score(0.5, True), Score(0.1, True), Score(0.3, True)]).value == 0.1
    assert METRICS["log-loss"].better(0.1, 0.2) and not METRICS["accuracy"].better(0.1, 0.2)
    assert METRICS["log-loss"].worst() == float("inf") and METRICS["auc-roc"].worst() == float("-inf")
    with pytest.raises(ValueError, match="opposite directions"):
        _ = Score(0.1, True) < Score(0.1, False)


# --- each competition's grader on synthetic answers, both directions ---------------------

N_ROWS = 120


def synthetic(cid: str, rng: np.random.Generator) -> pd.DataFrame:
    """Answers shaped as the competition's: its id column, its target columns, its
    kind of truth (0/1, one-hot, grades 0-4, fares, text)."""
    comp = competition(cid)
    targets = list(comp.target_columns or [f"class_{j:03d}" for j in range(comp.n_targets)])
    ids = np.arange(1000, 1000 + N_ROWS) if cid in ("mlsp-2013-birds", "tabular-playground-series-dec-2021") \
        else np.array([f"{cid[:4]}_{i}" for i in range(N_ROWS)], dtype=object)
    name = comp.metric.name
    if name == "multi-class-log-loss":
        truth = np.eye(len(targets), dtype=int)[rng.integers(0, len(targets), N_ROWS)]
    elif name == "quadratic-weighted-kappa":
        truth = rng.integers(0, 5, (N_ROWS, 1))
    elif name == "accuracy" and cid.startswith("text"):
        truth = rng.choice(np.array(["one", "two", "sil", "w w w", "NA"], dtype=object), (N_ROWS, 1))
    elif name == "accuracy":
        truth = rng.integers(1, 8, (N_ROWS, 1))
    elif name in ("root-mean-squared-error", "mean-column-wise-rmsle"):
        truth = rng.random((N_ROWS, len(targets))) * (40 if cid.startswith("new-york") else 1)
    else:  # 0/1 labels, both classes in every column
        truth = (rng.random((N_ROWS, len(targets))) < 0.4).astype(int)
        truth[:2] = [[0] * len(targets), [1] * len(targets)]
    answers = pd.DataFrame(truth, columns=targets)
    if comp.skip_unlabelled:
        answers.iloc[-10:] = -1  # rows Kaggle never scored
    answers.insert(0, comp.id_column, ids)
    return answers


def predict(cid: str, answers: pd.DataFrame, noise: float, rng: np.random.Generator) -> pd.DataFrame:
    """A submission whose predictions are the truth blurred by ``noise`` (more noise,
    worse predictions), rows shuffled."""
    comp = competition(cid)
    targets = [c for c in answers.columns if c != comp.id_column]
    truth = answers[targets].to_numpy()
    name = comp.metric.name
    if name == "multi-class-log-loss":
        logits = 3 * truth + noise * rng.normal(size=truth.shape)
        pred = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    elif name in ("auc-roc", "log-loss"):
        pred = 1 / (1 + np.exp(-(3 * (2 * truth - 1) + noise * rng.normal(size=truth.shape))))
    elif name == "quadratic-weighted-kappa":
        pred = np.clip(truth + np.round(noise * rng.normal(size=truth.shape)), 0, 4).astype(int)
    elif name == "accuracy":
        swap = rng.random(truth.shape) < noise / 4
        pred = np.where(swap, np.roll(truth, 1, axis=0), truth)
    else:
        pred = np.abs(truth + noise * 0.1 * truth.std() * rng.normal(size=truth.shape))
    sub = pd.DataFrame(pred, columns=targets)
    sub.insert(0, comp.id_column, answers[comp.id_column].to_numpy())
    return sub.sample(frac=1, random_state=int(rng.integers(1 << 30))).reset_index(drop=True)


def independent(cid: str, answers: pd.DataFrame, submission: pd.DataFrame) -> float:
    """scikit-learn's value of the competition's metric (rows paired by id by hand)."""
    comp = competition(cid)
    targets = [c for c in answers.columns if c != comp.id_column]
    sub = submission.set_index(comp.id_column).loc[answers[comp.id_column], targets].to_numpy()
    truth = answers[targets].to_numpy()
    if comp.skip_unlabelled:
        keep = truth.min(axis=1) >= 0
        truth, sub = truth[keep], sub[keep]
    name = comp.metric.name
    if name == "auc-roc":
        return np.mean([skm.roc_auc_score(truth[:, j], sub[:, j]) for j in range(truth.shape[1])])
    if name == "log-loss":
        return skm.log_loss(truth[:, 0], sub[:, 0].astype(float))
    if name == "multi-class-log-loss":
        return skm.log_loss(truth.argmax(axis=1), sub.astype(float), labels=range(truth.shape[1]))
    if name == "quadratic-weighted-kappa":
        return skm.cohen_kappa_score(sub[:, 0].astype(int), truth[:, 0].astype(int), weights="quadratic")
    if name == "accuracy":
        return skm.accuracy_score(truth[:, 0].astype(str), sub[:, 0].astype(str))
    if name == "root-mean-squared-error":
        return skm.root_mean_squared_error(truth[:, 0], sub[:, 0])
    if name == "mean-column-wise-rmsle":
        return np.mean([skm.root_mean_squared_log_error(truth[:, j], sub[:, j]) for j in range(truth.shape[1])])
    raise AssertionError(f"no independent implementation for {name}")


@pytest.mark.parametrize("cid", LITE)
def test_each_grader_agrees_with_sklearn_and_ranks_better_submissions_better(cid):
    rng = np.random.default_rng(sum(map(ord, cid)))
    comp = competition(cid)
    answers = synthetic(cid, rng)
    good, bad = predict(cid, answers, 0.8, rng), predict(cid, answers, 3.0, rng)
    good_score, bad_score = comp.score(good, answers), comp.score(bad, answers)
    assert good_score == pytest.approx(independent(cid, answers, good), rel=1e-9, abs=1e-12)
    assert bad_score == pytest.approx(independent(cid, answers, bad), rel=1e-9, abs=1e-12)
    assert comp.metric.better(good_score, bad_score), (good_score, bad_score)
    assert Score(good_score, comp.is_lower_better) > Score(bad_score, comp.is_lower_better)
    # the answers themselves are the best submission there is, and a grade is rounded as MLE-bench rounds
    perfect = comp.grade(answers.copy(), answers)
    assert not comp.metric.better(good_score, perfect)
    assert comp.grade(good, answers) == round(good_score, 5)
    # the same check passes against the sample submission (ids and columns, no answers)
    sample = answers.copy()
    comp.check(good, sample)


def test_the_docstring_examples_run():
    for module in (package, competitions, metrics, submission):
        assert doctest.testmod(module).failed == 0, module.__name__


@pytest.mark.parametrize("seed", range(3))
def test_every_metrics_scores_lie_in_its_bounds(seed):
    """`Metric.bounds` (what `--target` is checked against) holds every score: random
    predictions, perfect ones and the worst labels."""
    from benchmarks.mlebench.metrics import METRICS

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=(200, 1))
    binary = rng.integers(0, 2, size=(200, 1))
    probs = rng.random((200, 1))
    values = rng.random((200, 1)) * 10
    cases = {"label": [(labels, rng.integers(0, 3, size=(200, 1))), (labels, labels), (labels, 2 - labels)],
             "probability": [(binary, probs), (binary, binary.astype(float)), (binary, 1.0 - binary)],
             "value": [(values, values), (values, values * 3)]}
    for metric in METRICS.values():
        low, high = metric.bounds
        for y_true, y_pred in cases[metric.predicts]:
            if metric.name == "multi-class-log-loss":
                y_true = np.eye(2)[binary[:, 0]]
                y_pred = np.column_stack([1 - probs[:, 0], probs[:, 0]])
            score = metric.score(y_true, y_pred)
            assert low <= score <= high, (metric.name, score)
