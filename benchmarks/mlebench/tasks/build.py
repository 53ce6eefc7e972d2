"""Build the shipped tasks from data that ships with scikit-learn (no downloads).

    python -m benchmarks.mlebench.tasks.build        # rewrites benchmarks/mlebench/tasks/<id>/

Each task, in MLE-bench's layout (benchmarks/mlebench/task.py): config.yaml (the
grader's name, dataset paths); a seeded 75/25 split; public train.csv (features +
target), test.csv (features), sample_submission.csv; private answers.csv; and an
honest leaderboard:
the test scores of a spread of reasonable scikit-learn models (several families and
hyperparameters, each trained on 25 %, 50 % and 100 % of the training set), best
first, one row per model ("team"). Deterministic: the same files on every run.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn import datasets, ensemble, linear_model, naive_bayes, neighbors, svm, tree
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks.mlebench import metric_by_name

HERE = Path(__file__).resolve().parent
SEED = 20261127

CLASSIFIERS = {
    **{f"logreg-C{c}": lambda c=c: make_pipeline(StandardScaler(), linear_model.LogisticRegression(C=c, max_iter=2000))
       for c in (0.001, 0.01, 0.1, 1.0, 10.0)},
    **{f"knn-{k}": lambda k=k: make_pipeline(StandardScaler(), neighbors.KNeighborsClassifier(k)) for k in (1, 5, 15, 51)},
    **{f"tree-depth{d}": lambda d=d: tree.DecisionTreeClassifier(max_depth=d, random_state=0) for d in (2, 4, 8)},
    **{f"forest-{n}": lambda n=n: ensemble.RandomForestClassifier(n, random_state=0) for n in (10, 200)},
    "naive-bayes": naive_bayes.GaussianNB,
    **{f"svc-C{c}": lambda c=c: make_pipeline(StandardScaler(), svm.SVC(C=c, random_state=0))
       for c in (0.1, 10.0)},
    "hist-gbm": lambda: ensemble.HistGradientBoostingClassifier(random_state=0),
    "majority": lambda: DummyClassifier(strategy="most_frequent"),
}
REGRESSORS = {
    **{f"ridge-{a}": lambda a=a: make_pipeline(StandardScaler(), linear_model.Ridge(alpha=a)) for a in (0.1, 10.0, 100.0)},
    **{f"lasso-{a}": lambda a=a: make_pipeline(StandardScaler(), linear_model.Lasso(alpha=a)) for a in (0.1, 1.0, 10.0)},
    **{f"knn-{k}": lambda k=k: make_pipeline(StandardScaler(), neighbors.KNeighborsRegressor(k)) for k in (3, 10, 30)},
    **{f"tree-depth{d}": lambda d=d: tree.DecisionTreeRegressor(max_depth=d, random_state=0) for d in (2, 4, 8)},
    **{f"forest-{n}": lambda n=n: ensemble.RandomForestRegressor(n, random_state=0) for n in (10, 200)},
    "hist-gbm": lambda: ensemble.HistGradientBoostingRegressor(random_state=0),
    "mean": lambda: DummyRegressor(strategy="mean"),
}

TASKS = {
    "breast-cancer": dict(load=datasets.load_breast_cancer, metric="auc-roc", kind="classification",
                          what="whether a breast mass is malignant (1) or benign (0) from 30 measurements of cell "
                               "nuclei in a digitized image of a fine needle aspirate",
                          predict="the probability that the mass is malignant (target = 1)"),
    "digits": dict(load=datasets.load_digits, metric="accuracy", kind="classification",
                   what="which digit (0-9) an 8x8 grey-level image of a handwritten digit shows, from its 64 pixels",
                   predict="the digit"),
    "diabetes": dict(load=datasets.load_diabetes, metric="root-mean-squared-error", kind="regression",
                     what="a quantitative measure of diabetes progression one year after baseline, from age, sex, "
                          "body mass index, blood pressure and six blood serum measurements (all standardized)",
                     predict="the progression measure"),
}


def _leaderboard(spec: dict, X: pd.DataFrame, y: np.ndarray, X_test: pd.DataFrame, y_test: np.ndarray) -> pd.DataFrame:
    models = REGRESSORS if spec["kind"] == "regression" else CLASSIFIERS
    rows = []
    for (name, make), frac in itertools.product(models.items(), (0.25, 0.5, 1.0)):
        n = max(int(len(X) * frac), 20)
        model = make().fit(X.iloc[:n], y[:n])
        if spec["metric"] == "auc-roc":
            scores = model.predict_proba if hasattr(model, "predict_proba") else model.decision_function
            pred = scores(X_test)
            pred = pred[:, 1] if pred.ndim == 2 else pred
        else:
            pred = model.predict(X_test)
        rows.append({"team": f"{name}@{int(frac * 100)}%", "score": round(metric_by_name(spec["metric"]).score(y_test, pred), 5)})
    board = pd.DataFrame(rows)
    return board.sort_values("score", ascending=metric_by_name(spec["metric"]).is_lower_better, kind="stable").reset_index(drop=True)


def write_config(out: Path, task_id: str, metric: str) -> None:
    """``out/config.yaml``: MLE-bench's competition config of a shipped task (answers in
    prepared/private/answers.csv, the sample submission in prepared/public)."""
    (out / "config.yaml").write_text(yaml.safe_dump({  # MLE-bench's competition config
        "id": task_id, "name": task_id.replace("-", " ").title(), "competition_type": "simple", "awards_medals": False,
        "prizes": None, "description": f"benchmarks/mlebench/tasks/{task_id}/description.md",
        "dataset": {"answers": f"{task_id}/prepared/private/answers.csv",
                    "sample_submission": f"{task_id}/prepared/public/sample_submission.csv"},
        "grader": {"name": metric}}, sort_keys=False))


def build(task_id: str, spec: dict) -> None:
    data = spec["load"](as_frame=True)
    frame = data.frame.rename(columns={data.frame.columns[-1]: "target"}) if "target" not in data.frame else data.frame
    X, y = frame.drop(columns=["target"]), frame["target"].to_numpy()
    X.columns = [str(c).replace(" ", "_") for c in X.columns]
    stratify = y if spec["kind"] == "classification" else None
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=SEED, stratify=stratify)
    out = HERE / task_id
    (out / "prepared" / "public").mkdir(parents=True, exist_ok=True)
    (out / "prepared" / "private").mkdir(parents=True, exist_ok=True)
    ids = np.arange(len(X_te))
    train = X_tr.reset_index(drop=True).assign(target=y_tr)
    train.insert(0, "id", np.arange(len(train)) + 10_000)
    train.to_csv(out / "prepared" / "public" / "train.csv", index=False)
    X_te.reset_index(drop=True).assign(id=ids)[["id", *X.columns]].to_csv(out / "prepared" / "public" / "test.csv", index=False)
    default = 0.5 if spec["metric"] == "auc-roc" else (float(np.mean(y_tr)) if spec["kind"] == "regression" else int(pd.Series(y_tr).mode()[0]))
    pd.DataFrame({"id": ids, "target": default}).to_csv(out / "prepared" / "public" / "sample_submission.csv", index=False)
    pd.DataFrame({"id": ids, "target": y_te}).to_csv(out / "prepared" / "private" / "answers.csv", index=False)
    board = _leaderboard(spec, X_tr.reset_index(drop=True), y_tr, X_te, y_te)
    board.to_csv(out / "leaderboard.csv", index=False)
    write_config(out, task_id, spec["metric"])
    better = "lower" if metric_by_name(spec["metric"]).is_lower_better else "higher"
    (out / "description.md").write_text(
        f"# {task_id}\n\nPredict {spec['what']}.\n\n"
        f"- `train.csv`: {len(train)} rows: an `id`, {X.shape[1]} feature columns and `target`.\n"
        f"- `test.csv`: {len(X_te)} rows: an `id` and the same features, without `target`.\n"
        f"- Submit `submission.csv` with the columns `id,target`, one row per test id, where `target` is "
        f"{spec['predict']} (see `sample_submission.csv`).\n\n"
        f"Metric: {spec['metric']} ({better} is better).\n\n"
        f"Data: scikit-learn's bundled `{spec['load'].__name__}` dataset, split 75/25 (seed {SEED}).\n")
    (out / "LEADERBOARD.md").write_text(
        f"# How leaderboard.csv of {task_id} was made\n\n`python -m benchmarks.mlebench.tasks.build`: {len(board)} 'teams', "
        f"each a scikit-learn model ({', '.join(sorted({t.split('@')[0] for t in board.team}))}) trained on the first "
        f"25 %, 50 % or 100 % of train.csv and scored ({spec['metric']}) on the private answers. Best first.\n\n"
        f"Best {board.score.iloc[0]}, median {board.score.median()}, worst {board.score.iloc[-1]}.\n")
    print(f"{task_id}: {len(train)} train, {len(X_te)} test, leaderboard of {len(board)} "
          f"(best {board.score.iloc[0]}, median {board.score.median()})")


if __name__ == "__main__":
    for task_id, spec in TASKS.items():
        build(task_id, spec)
