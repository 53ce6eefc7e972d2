"""Baseline tabular pipeline (written by the baseline coder; one experiment = one model).

    python ../../code/train.py --model forest --params '{"n_estimators": 200}'

Reads the task's public files from the project (../../task/) and what the task asks
(task.json: the id and target columns, what the metric scores: labels, probabilities
or values), scores the model by 5-fold cross-validation on train.csv, fits it on all
of train.csv, predicts test.csv into submission.csv here (the columns of
sample_submission.csv), and writes metrics.json: {"cv_score": ...}.
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import ensemble, linear_model, neighbors
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

TASK = Path("../../task")
SEED = int(os.environ.get("AISCI_SEED", "0"))  # a sweep's seed axis (folds and models)
MODELS = {
    "classification": {
        "logreg": lambda p: make_pipeline(StandardScaler(), linear_model.LogisticRegression(max_iter=3000, **p)),
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


def score(metric, y, pred):
    """The cross-validation score by the task's metric (sklearn's, where ours has no copy here)."""
    from sklearn import metrics
    if metric == "root-mean-squared-error":
        return float(np.sqrt(np.mean((y - pred) ** 2)))
    if metric == "auc-roc":
        return float(metrics.roc_auc_score(y, pred))
    if metric == "log-loss":
        return float(metrics.log_loss(y, pred))
    if metric == "quadratic-weighted-kappa":
        return float(metrics.cohen_kappa_score(y, pred, weights="quadratic"))
    if metric == "mean-column-wise-rmsle":
        return float(np.sqrt(np.mean((np.log1p(np.clip(pred, 0, None)) - np.log1p(y)) ** 2)))
    return float(np.mean(y == pred))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--params", default="{}")
    args = ap.parse_args()
    spec = json.loads((TASK / "task.json").read_text())
    train, test = pd.read_csv(TASK / "train.csv"), pd.read_csv(TASK / "test.csv")
    idc, target = spec["id_column"], spec["target_columns"][0]  # one target column: what this pipeline fits
    X, y = train.drop(columns=[idc, *spec["target_columns"]], errors="ignore"), train[target].to_numpy()
    model = MODELS[spec["kind"]][args.model](json.loads(args.params))
    folds = StratifiedKFold(5, shuffle=True, random_state=SEED) if spec["kind"] == "classification" else KFold(5, shuffle=True, random_state=SEED)
    method = "predict_proba" if spec["predicts"] == "probability" else "predict"
    oof = cross_val_predict(model, X, y, cv=folds, method=method)
    oof = oof[:, 1] if oof.ndim == 2 else oof
    cv = score(spec["metric"], y, oof)
    model.fit(X, y)
    pred = getattr(model, method)(test.drop(columns=[idc]))
    pred = pred[:, 1] if pred.ndim == 2 else pred
    pd.DataFrame({idc: test[idc], target: pred}).to_csv("submission.csv", index=False)
    json.dump({"cv_score": cv}, open("metrics.json", "w"))
    print(f"{args.model} {args.params}: cv {spec['metric']} = {cv:.5f}")


if __name__ == "__main__":
    main()
