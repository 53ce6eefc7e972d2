"""The task's data as arrays, and the submission written back (the baseline's loader,
beside code/train.py; numpy, pandas, scikit-learn and Pillow only).

Everything comes from ``../../task/task.json`` (``benchmarks.mlebench.data``: the data
kind and where its parts are); no column name is written here.

    >>> data = load()                      # run from experiments/<run>/
    >>> data.X.shape, data.T.shape         # inputs of the training rows; truth (rows, targets)
    >>> write_submission(data, P)          # P: (test rows, targets), the target columns' order
    >>> write_oof(data, P_oof)             # out-of-fold predictions of the training rows (ensembles)

The targets, whatever shape the task gives them, become one matrix ``T`` of
``(rows, len(target_columns))``:

- ``single``: one target column (a label, a value or a probability of class 1);
- ``columns``: several target columns the training table holds (jigsaw's six labels,
  plant-pathology's four): one model per column;
- ``classes``: one probability column per class (multi-class log loss), the class of a
  row given either by a column of class names (spooky's ``author``) or one-hot in the
  target columns: one multi-class model, its ``predict_proba`` columns mapped to the
  target columns by class name (a class absent from the training rows gets 0 before
  the rows are renormalised).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

TASK = Path("../../task")
IMAGE_SIZE = 28  # images are read as IMAGE_SIZE x IMAGE_SIZE grey pixels in [0, 1]
PROBABILITY_FLOOR = 1e-6  # no class gets exactly 0: a log loss of one wrong certainty is -log(1e-6), not 36


@dataclass
class Data:
    """One task's data. ``X``/``X_test``: a DataFrame of features (tabular), an array of
    strings (text) or of flattened pixels ``(rows, IMAGE_SIZE**2)`` (images)."""

    spec: dict
    X: object
    X_test: object
    T: np.ndarray  # (rows, targets): the truth in the target columns' order
    test_ids: pd.Series
    train_ids: np.ndarray  # the training rows' ids (their order is that of T)
    mode: str  # single | columns | classes
    classes: list | None = None  # classes mode: the class of each target column (its name)
    y: np.ndarray | None = None  # classes mode: the class name of each training row

    @property
    def targets(self) -> list[str]:
        return self.spec["target_columns"]


def _tables(inputs: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_csv(TASK / inputs["train_csv"]), pd.read_csv(TASK / inputs["test_csv"])


def _features(train: pd.DataFrame, test: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Numbers as they are (a missing one: the training median); anything else as
    integer codes shared by both tables (the same text, the same code)."""
    both = pd.concat([train[columns], test[columns]], keys=["train", "test"])
    for c in columns:
        if pd.api.types.is_numeric_dtype(both[c]):
            both[c] = both[c].fillna(train[c].median() if train[c].notna().any() else 0)
        else:
            both[c] = pd.factorize(both[c].astype(str))[0]
    return both.loc["train"].reset_index(drop=True), both.loc["test"].reset_index(drop=True)


def _text(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return frame[columns].fillna("").astype(str).agg("\n".join, axis=1).to_numpy()


def read_images(ids, files: dict, size: int = IMAGE_SIZE) -> np.ndarray:
    """``(len(ids), size * size)`` grey pixels in [0, 1] of ``<folder>/<id><suffix>``."""
    from PIL import Image

    out = np.empty((len(ids), size * size), dtype=np.float32)
    for i, name in enumerate(ids):
        with Image.open(TASK / files["folder"] / f"{name}{files['suffix']}") as im:
            out[i] = np.asarray(im.convert("L").resize((size, size), Image.BILINEAR), dtype=np.float32).ravel() / 255
    return out


def _truth(spec: dict, train: pd.DataFrame) -> tuple[str, np.ndarray, list | None, np.ndarray | None]:
    targets, label = spec["target_columns"], spec["inputs"]["label_column"]
    if spec["metric"] == "multi-class-log-loss" or label is not None:
        classes = list(targets)
        y = (train[label].astype(str).to_numpy() if label is not None
             else np.asarray(classes, dtype=object)[train[targets].to_numpy(dtype=float).argmax(axis=1)])
        onehot = (y[:, None] == np.asarray(classes, dtype=object)[None, :]).astype(float)
        return "classes", onehot, classes, y
    if len(targets) == 1:
        return "single", train[targets].to_numpy(), None, None
    return "columns", train[targets].to_numpy(), None, None


def load(size: int = IMAGE_SIZE) -> Data:
    """The task's data (``task.json``'s ``data``: tabular, text or images).

    Raises:
        SystemExit: task.json says the data could not be derived (its reason).
    """
    spec = json.loads((TASK / "task.json").read_text())
    inputs = spec.get("inputs")
    if not inputs:
        raise SystemExit(f"task.json: the data is not understood: {spec.get('data_unknown')}")
    train, test = _tables(inputs)
    mode, T, classes, y = _truth(spec, train)
    kind = spec["data"]
    if kind == "images":
        X = read_images(train[inputs["train_id_column"]].astype(str), inputs["train_images"], size)
        X_test = read_images(test[spec["id_column"]].astype(str), inputs["test_images"], size)
    elif kind == "text":
        X, X_test = _text(train, inputs["text_columns"]), _text(test, inputs["text_columns"])
    else:
        X, X_test = _features(train, test, inputs["feature_columns"])
    return Data(spec=spec, X=X, X_test=X_test, T=T, test_ids=test[spec["id_column"]], mode=mode,
                classes=classes, y=y, train_ids=_train_ids(train, inputs))


def load_truth() -> Data:
    """The task's truth only (``T``, ``mode``, ids; no inputs: ``X`` is None), for what
    scores predictions already made (an ensemble of runs)."""
    spec = json.loads((TASK / "task.json").read_text())
    inputs = spec.get("inputs")
    if not inputs:
        raise SystemExit(f"task.json: the data is not understood: {spec.get('data_unknown')}")
    train, test = _tables(inputs)
    mode, T, classes, y = _truth(spec, train)
    return Data(spec=spec, X=None, X_test=None, T=T, test_ids=test[spec["id_column"]], mode=mode,
                classes=classes, y=y, train_ids=_train_ids(train, inputs))


def _train_ids(train: pd.DataFrame, inputs: dict) -> np.ndarray:
    column = inputs.get("train_id_column")
    return (train[column] if column in train else pd.Series(range(len(train)))).astype(str).to_numpy()


def finish(data: Data, P: np.ndarray) -> np.ndarray:
    """Predictions made gradable: probabilities in [0, 1] (rows summing to one in
    classes mode), labels as they are."""
    if data.spec["predicts"] != "probability":
        return P
    P = np.clip(P.astype(float), 0.0, 1.0)
    if data.mode == "classes":
        P = np.clip(P, PROBABILITY_FLOOR, 1.0)
        P = P / P.sum(axis=1, keepdims=True)
    return P


def write_submission(data: Data, P: np.ndarray, path: str = "submission.csv") -> None:
    """``path``: the id column and one column per target, a row per test id."""
    P = finish(data, np.asarray(P))
    out = pd.DataFrame({data.spec["id_column"]: data.test_ids.to_numpy()})
    for j, column in enumerate(data.targets):
        out[column] = P[:, j]
    out.to_csv(path, index=False)


OOF_CSV = "oof.csv"  # a run's out-of-fold predictions of the training rows, as submission.csv's columns
OOF_ID = "_train_id"  # its id column (a name no target column has)


def write_oof(data: Data, P: np.ndarray, path: str = OOF_CSV) -> None:
    """``path``: the out-of-fold predictions (each row predicted by a model that never saw
    it, made gradable as the submission is), a row per training id, in the training
    table's order: what an ensemble of runs is scored by, honestly, by cross-validation."""
    P = finish(data, np.asarray(P))
    out = pd.DataFrame({OOF_ID: data.train_ids})
    for j, column in enumerate(data.targets):
        out[column] = P[:, j]
    out.to_csv(path, index=False)
