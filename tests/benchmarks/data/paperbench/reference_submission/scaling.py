"""Reference reproduction of 'Scale Before You Measure Distance' (the shipped paper
benchmarks/paperbench/papers/scaling-knn-vs-forest): 5-fold stratified cross-validated
accuracy of k-NN and a random forest, with and without standardization, on the Wine and
Breast Cancer datasets bundled with scikit-learn (no download)."""

import csv
import sys

from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

DATASETS = {"wine": load_wine, "breast_cancer": load_breast_cancer}
MODELS = {
    "knn": lambda: KNeighborsClassifier(n_neighbors=5),
    "forest": lambda: RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1),
}


def accuracy(X, y, model, scaled):
    estimator = make_pipeline(StandardScaler(), model) if scaled else model
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    scores = cross_val_score(estimator, X, y, cv=folds, scoring="accuracy")
    return scores.mean(), scores.std()


def main(out="results.csv"):
    rows = []
    for name, load in DATASETS.items():
        X, y = load(return_X_y=True)
        for model_name, make in MODELS.items():
            means = {}
            for scaling in ("raw", "scaled"):
                mean, std = accuracy(X, y, make(), scaling == "scaled")
                means[scaling] = mean
                rows.append([name, model_name, scaling, f"{mean:.4f}", f"{std:.4f}"])
                print(f"{name} {model_name} {scaling} accuracy {mean:.4f} (std {std:.4f})", flush=True)
            print(f"{name} {model_name} gain {means['scaled'] - means['raw']:.4f}", flush=True)
            rows.append([name, model_name, "gain", f"{means['scaled'] - means['raw']:.4f}", ""])
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["dataset", "model", "scaling", "accuracy_mean", "accuracy_std"])
        writer.writerows(rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
