"""Baseline ensemble (written by the baseline coder beside train.py): the runs named
combined into one submission, scored by cross-validation.

    python ../../code/ensemble.py --runs draft-2,improve-1,draft-4

Reads each run's ``oof.csv`` (its out-of-fold predictions of the training rows, which
``train.py`` writes) and ``submission.csv`` from ``../<run>/``, combines them row by
row, and writes submission.csv, oof.csv and metrics.json {"cv_score": ...} here, like
a run of train.py. The cv score is the task's metric of the combined out-of-fold
predictions against the training truth: every row is predicted only by models that
never saw it, so the score is a cross-validation score (the members were chosen by
their own cv scores, as every node is; never by the test rows' answers).

Combining: probabilities and values are averaged (a class's probabilities then
renormalised, ``taskdata.finish``); labels are voted, each row's most frequent label,
a tie going to the first run named (the best by cv, as the search names them).
"""

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import taskdata
from train import score


def read(run: str, name: str, columns: list[str], ids: np.ndarray, id_column: str) -> np.ndarray:
    """``../<run>/<name>``'s target columns, checked to hold exactly the rows ``ids`` in order."""
    path = Path("..") / run / name
    if not path.is_file():
        raise SystemExit(f"run {run!r} has no {name} (a run of train.py writes it; ran {run} to the end?)")
    table = pd.read_csv(path)
    missing = [c for c in [id_column, *columns] if c not in table]
    if missing:
        raise SystemExit(f"{path}: no column(s) {missing}")
    if len(table) != len(ids) or (table[id_column].astype(str).to_numpy() != ids).any():
        raise SystemExit(f"{path}: its rows are not the task's rows in order (another task or a damaged file)")
    return table[columns].to_numpy()


def combine(parts: list[np.ndarray], vote: bool) -> np.ndarray:
    """Average (values, probabilities) or vote (labels: the most frequent; among tied
    labels, the one of the earliest part)."""
    if not vote:
        return np.mean([p.astype(float) for p in parts], axis=0)
    stacked = np.stack(parts)  # (parts, rows, targets)
    out = stacked[0].copy()
    for i, j in np.ndindex(out.shape):
        column = [str(v) for v in stacked[:, i, j]]
        most = max(column.count(v) for v in column)
        out[i, j] = stacked[next(k for k, v in enumerate(column) if column.count(v) == most), i, j]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True, help="comma-separated run names (folders beside this run's)")
    runs = [r for r in ap.parse_args().runs.split(",") if r]
    if len(runs) < 2 or any("/" in r or r in (".", "..") for r in runs):
        raise SystemExit(f"--runs: at least two run names, no paths (got {runs})")
    data = taskdata.load_truth()
    vote = data.spec["predicts"] == "label"
    oof = combine([read(r, taskdata.OOF_CSV, data.targets, data.train_ids, taskdata.OOF_ID) for r in runs], vote)
    test_ids = data.test_ids.astype(str).to_numpy()
    pred = combine([read(r, "submission.csv", data.targets, test_ids, data.spec["id_column"]) for r in runs], vote)
    cv = score(data.spec["metric"], data.T, taskdata.finish(data, oof))
    taskdata.write_submission(data, pred)
    taskdata.write_oof(data, oof)
    Path("metrics.json").write_text(json.dumps({"cv_score": cv}))
    print(f"ensemble of {', '.join(runs)} ({'vote' if vote else 'mean'}): cv {data.spec['metric']} = {cv:.5f}")


if __name__ == "__main__":
    main()
