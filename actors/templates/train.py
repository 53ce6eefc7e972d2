"""Baseline pipeline (written by the baseline coder; one experiment = one model).

    python ../../code/train.py --model logreg --params '{"C": 1.0}'

Reads the task (../../task/task.json: what it asks and what its data is, tabular, text
or images; ``taskdata.py`` beside this file loads it), scores the model by 5-fold
cross-validation on the training rows by the task's metric, fits it on all of them,
predicts the test rows into submission.csv here (the sample submission's columns),
writes the out-of-fold predictions it was scored by into oof.csv (what ``ensemble.py``
combines) and metrics.json: {"cv_score": ...}.

Models by data kind: tabular (logreg/ridge, forest, hgb, knn on the feature columns),
text (TF-IDF of words or characters + a linear model, or naive Bayes on word counts),
images (grey pixels, ``--params '{"size": 28}'``, + logreg/ridge, forest, hgb, knn).
Several target columns: one model per column; one probability column per class: one
multi-class model.
"""

import argparse
import json
import os

import numpy as np
import taskdata
from sklearn import (
    ensemble,
    feature_extraction,
    linear_model,
    metrics,
    naive_bayes,
    neighbors,
)
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

SEED = int(os.environ.get("AISCI_SEED", "0"))  # a sweep's seed axis (folds and models)
EPS = float(np.finfo(np.float64).eps)


def _words():
    return feature_extraction.text.TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=200_000)


def _chars():
    return feature_extraction.text.TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True,
                                                   max_features=200_000)


_LOGREG = lambda p: linear_model.LogisticRegression(max_iter=3000, **p)  # noqa: E731
_DENSE = {  # numbers in columns: tabular features and image pixels
    "classification": {
        "logreg": lambda p: make_pipeline(StandardScaler(), _LOGREG(p)),
        "forest": lambda p: ensemble.RandomForestClassifier(random_state=SEED, **p),
        "hgb": lambda p: ensemble.HistGradientBoostingClassifier(random_state=SEED, **p),
        "knn": lambda p: make_pipeline(StandardScaler(), neighbors.KNeighborsClassifier(**p)),
    },
    "regression": {
        "ridge": lambda p: make_pipeline(StandardScaler(), linear_model.Ridge(**p)),
        "forest": lambda p: ensemble.RandomForestRegressor(random_state=SEED, **p),
        "hgb": lambda p: ensemble.HistGradientBoostingRegressor(random_state=SEED, **p),
        "knn": lambda p: make_pipeline(StandardScaler(), neighbors.KNeighborsRegressor(**p)),
    },
}
MODELS = {
    "tabular": _DENSE,
    "images": _DENSE,
    "text": {
        "classification": {
            "tfidf-logreg": lambda p: make_pipeline(_words(), _LOGREG(p)),
            "char-logreg": lambda p: make_pipeline(_chars(), _LOGREG(p)),
            "nb": lambda p: make_pipeline(feature_extraction.text.CountVectorizer(ngram_range=(1, 2), min_df=2),
                                          naive_bayes.MultinomialNB(**p)),
        },
        "regression": {
            "tfidf-ridge": lambda p: make_pipeline(_words(), linear_model.Ridge(**p)),
            "char-ridge": lambda p: make_pipeline(_chars(), linear_model.Ridge(**p)),
        },
    },
}


def score(metric, T, P):
    """The task's metric of predictions ``P`` against truth ``T``, both (rows, targets);
    a metric over several columns is their mean (as MLE-bench's column-wise graders)."""
    T, P = np.asarray(T), np.asarray(P)
    columns = range(T.shape[1])
    if metric == "root-mean-squared-error":
        return float(np.mean([np.sqrt(np.mean((T[:, j].astype(float) - P[:, j]) ** 2)) for j in columns]))
    if metric == "mean-column-wise-rmsle":
        return float(np.mean([np.sqrt(np.mean((np.log1p(np.clip(P[:, j], 0, None)) - np.log1p(T[:, j].astype(float))) ** 2))
                              for j in columns]))
    if metric == "auc-roc":
        return float(np.mean([metrics.roc_auc_score(T[:, j].astype(float), P[:, j]) for j in columns
                              if len(np.unique(T[:, j])) == 2]))
    if metric == "log-loss":
        return float(metrics.log_loss(T[:, 0].astype(float), P[:, 0], labels=[0, 1]))
    if metric == "multi-class-log-loss":
        return float(-np.mean(np.sum(T * np.log(np.clip(P, EPS, 1 - EPS)), axis=1)))
    if metric == "quadratic-weighted-kappa":
        return float(metrics.cohen_kappa_score(T[:, 0], P[:, 0], weights="quadratic"))
    return float(np.mean(np.all(T == P, axis=1)))  # accuracy


def folds(y, classification, n_rows):
    """5 folds (3 beyond 50,000 rows), stratified where every class has 5 rows."""
    k = 3 if n_rows > 50_000 else 5
    if classification and np.unique(y, return_counts=True)[1].min() >= k:
        return StratifiedKFold(k, shuffle=True, random_state=SEED)
    return KFold(k, shuffle=True, random_state=SEED)


def positive(model, proba):
    """The probability of the largest class (1 of 0/1, True of booleans)."""
    return proba[:, int(np.argmax(model.classes_))] if proba.shape[1] > 1 else np.zeros(len(proba))


def fit_one(make, X, y, X_test, how):
    """Out-of-fold and test predictions of one column: ``how`` is ``predict`` (labels,
    values) or ``positive`` (the probability of class 1)."""
    if len(np.unique(y)) < 2:  # one value everywhere: nothing to learn
        constant = float(y[0]) if how == "positive" else y[0]
        return np.full(len(y), constant, dtype=object if how == "predict" else float), np.full(len(X_test), constant)
    method = "predict_proba" if how == "positive" else "predict"
    cv = folds(y, how == "positive" or not np.issubdtype(np.asarray(y).dtype, np.floating), len(y))
    oof = cross_val_predict(make(), X, y, cv=cv, method=method)
    model = make().fit(X, y)
    test = getattr(model, method)(X_test)
    if how == "positive":
        oof, test = positive(model, oof), positive(model, test)
    return oof, test


def fit_classes(make, X, y, X_test, classes):
    """Out-of-fold and test probabilities of one multi-class model, a column per class of
    ``classes`` (the target columns' order; a class never seen: 0)."""

    def spread(model_classes, proba):
        out = np.zeros((len(proba), len(classes)))
        where = {str(c): j for j, c in enumerate(model_classes)}
        for k, c in enumerate(classes):
            if str(c) in where:
                out[:, k] = proba[:, where[str(c)]]
        return out

    cv = folds(y, True, len(y))
    oof = cross_val_predict(make(), X, y, cv=cv, method="predict_proba")
    model = make().fit(X, y)
    labels = np.unique(y)  # cross_val_predict's columns: the sorted classes
    return spread(labels, oof), spread(model.classes_, model.predict_proba(X_test))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--params", default="{}")
    args = ap.parse_args()
    params = json.loads(args.params)
    size = int(params.pop("size", taskdata.IMAGE_SIZE))
    data = taskdata.load(size)
    spec = data.spec
    family = MODELS[spec["data"]][spec["kind"]]
    if args.model not in family:
        raise SystemExit(f"no model {args.model!r} for {spec['data']} {spec['kind']}; choose from {sorted(family)}")
    make = lambda: family[args.model](dict(params))  # noqa: E731
    if data.mode == "classes":
        oof, pred = fit_classes(make, data.X, data.y, data.X_test, data.classes)
    else:
        how = "positive" if spec["predicts"] == "probability" else "predict"
        pairs = [fit_one(make, data.X, data.T[:, j], data.X_test, how) for j in range(data.T.shape[1])]
        oof, pred = np.column_stack([p[0] for p in pairs]), np.column_stack([p[1] for p in pairs])
    cv = score(spec["metric"], data.T, taskdata.finish(data, oof))
    taskdata.write_submission(data, pred)
    taskdata.write_oof(data, oof)
    json.dump({"cv_score": cv}, open("metrics.json", "w"))
    print(f"{args.model} {json.dumps(params)} on {spec['data']} ({data.mode}, {data.T.shape[1]} target(s)): "
          f"cv {spec['metric']} = {cv:.5f}")


if __name__ == "__main__":
    main()
