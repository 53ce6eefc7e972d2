"""Baseline tabular pipeline (written by the baseline coder; one experiment = one model).

    python ../../code/train.py --model forest --params '{"n_estimators": 200}'

Reads the task's public files from the project (../../task/), scores the model by
5-fold cross-validation on train.csv, fits it on all of train.csv, predicts test.csv
into submission.csv here, and writes metrics.json: {"cv_score": ...}.
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
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
    if metric == "accuracy":
        return float(np.mean(y == pred))
    if metric == "rmse":
        return float(np.sqrt(np.mean((y - pred) ** 2)))
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(y, pred))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--params", default="{}")
    args = ap.parse_args()
    spec = yaml.safe_load((TASK / "task.yaml").read_text())
    train, test = pd.read_csv(TASK / "train.csv"), pd.read_csv(TASK / "test.csv")
    idc, target = spec["id_column"], spec["target_column"]
    X, y = train.drop(columns=[idc, target]), train[target].to_numpy()
    model = MODELS[spec["kind"]][args.model](json.loads(args.params))
    folds = StratifiedKFold(5, shuffle=True, random_state=SEED) if spec["kind"] == "classification" else KFold(5, shuffle=True, random_state=SEED)
    method = "predict_proba" if spec["metric"] == "roc_auc" else "predict"
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
