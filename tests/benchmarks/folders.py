"""Small competition folders in MLE-bench's layout, one per shape of data the baseline
must handle: text with class names as labels, text with several label columns, a table
with several value columns, image folders (ids with and without their extension).
Each learnable (a model beats the prior), small enough to train in a second."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

RNG_SEED = 7
# class names as a sample submission may spell them: spaces, commas, quotes, slashes
AWKWARD = ["New York, N.Y.", "Mrs. O'Brien", "x/y (z)"]
_VOCAB = {0: "harbor subway taxi avenue bridge", 1: "garden letter tea cottage parlour",
          2: "vector matrix slash bracket axis"}
_FILLER = "the a of and to in that it was with as for on".split()


def competition(root: Path, cid: str, metric: str, train: pd.DataFrame, answers: pd.DataFrame,
                sample: pd.DataFrame, test: pd.DataFrame | None = None, train_name: str = "train.csv") -> Path:
    """Write ``root/cid`` as MLE-bench lays a competition out; returns the folder."""
    folder = root / cid
    public, private = folder / "prepared" / "public", folder / "prepared" / "private"
    public.mkdir(parents=True, exist_ok=True)
    private.mkdir(parents=True, exist_ok=True)
    train.to_csv(public / train_name, index=False)
    if test is not None:
        test.to_csv(public / "test.csv", index=False)
    sample.to_csv(public / "sample_submission.csv", index=False)
    answers.to_csv(private / "test.csv", index=False)
    (folder / "description.md").write_text(f"# {cid}\n\nA synthetic competition of the tests.\n")
    (folder / "config.yaml").write_text(yaml.safe_dump({
        "id": cid, "name": cid, "competition_type": "simple", "awards_medals": False,
        "dataset": {"answers": f"{cid}/prepared/private/test.csv",
                    "sample_submission": f"{cid}/prepared/public/sample_submission.csv"},
        "grader": {"name": metric}}))
    return folder


def _sentence(rng, cls: int) -> str:
    words = list(rng.choice(_FILLER, 8)) + list(rng.choice(_VOCAB[cls].split(), 4))
    rng.shuffle(words)
    return " ".join(words).capitalize() + "."


def text_classes(root: Path, n_train: int = 150, n_test: int = 60) -> Path:
    """spooky-author's shape: a text column named ``passage``, a label column ``writer``
    whose values are the class names, one probability column per class (``AWKWARD``)."""
    rng = np.random.default_rng(RNG_SEED)
    y = rng.integers(0, 3, n_train + n_test)
    text = [_sentence(rng, c) for c in y]
    ids = [f"id{i:05d}" for i in range(n_train + n_test)]
    train = pd.DataFrame({"id": ids[:n_train], "passage": text[:n_train],
                          "writer": np.asarray(AWKWARD, dtype=object)[y[:n_train]]})
    test = pd.DataFrame({"id": ids[n_train:], "passage": text[n_train:]})
    onehot = {c: (y[n_train:] == k).astype(int) for k, c in enumerate(AWKWARD)}
    return competition(root, "text-classes", "multi-class-log-loss", train, pd.DataFrame({"id": test.id, **onehot}),
                       pd.DataFrame({"id": test.id, **{c: 1 / 3 for c in AWKWARD}}), test)


def text_labels(root: Path, n_train: int = 200, n_test: int = 80) -> Path:
    """jigsaw's shape: ``comment_text`` and three 0/1 label columns, mean ROC AUC."""
    rng = np.random.default_rng(RNG_SEED + 1)
    labels = ["toxic", "insult", "threat"]
    y = rng.integers(0, 2, (n_train + n_test, 3))
    text = [" ".join([_sentence(rng, 1)] + [_sentence(rng, k) for k in (0, 2) if row[k % 3]] +
                     (["you fool idiot"] if row[1] else [])) for row in y]
    ids = [f"{i:016x}" for i in range(n_train + n_test)]
    train = pd.DataFrame({"id": ids[:n_train], "comment_text": text[:n_train], **dict(zip(labels, y[:n_train].T))})
    test = pd.DataFrame({"id": ids[n_train:], "comment_text": text[n_train:]})
    return competition(root, "text-labels", "column-wise ROC AUC", train,
                       pd.DataFrame({"id": test.id, **dict(zip(labels, y[n_train:].T))}),
                       pd.DataFrame({"id": test.id, **{c: 0.5 for c in labels}}), test)


def table_values(root: Path, n_train: int = 160, n_test: int = 60) -> Path:
    """nomad2018's shape: features (one of them text categories) and two value columns,
    mean column-wise RMSLE."""
    rng = np.random.default_rng(RNG_SEED + 2)
    n = n_train + n_test
    x = rng.random((n, 3))
    group = rng.choice(["alpha", "beta", "gamma"], n)
    a = 0.2 + 0.3 * x[:, 0] + 0.1 * (group == "beta")
    b = 1.0 + 2.0 * x[:, 1] * x[:, 2]
    frame = pd.DataFrame({"id": np.arange(1, n + 1), "x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "group": group,
                          "energy": a, "gap": b})
    train, test = frame.iloc[:n_train], frame.iloc[n_train:]
    return competition(root, "table-values", "mean-column-wise-rmsle", train, test[["id", "energy", "gap"]],
                       test[["id"]].assign(energy=0.3, gap=1.5), test.drop(columns=["energy", "gap"]))


def _picture(rng, cls: int, size: int = 16) -> Image.Image:
    """A dark square with a bright patch whose place says the class, plus noise."""
    pixels = rng.normal(40, 20, (size, size))
    r, c = divmod(cls, 2)
    pixels[r * 8 + 2:r * 8 + 6, c * 8 + 2:c * 8 + 6] += 180
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")


def images_named_by_id(root: Path, n_train: int = 90, n_test: int = 30) -> Path:
    """dog-breed's shape: ``train/<id>.png`` and ``test/<id>.png`` (ids without their
    extension), ``labels.csv`` of ``id,breed``, one probability column per class."""
    rng = np.random.default_rng(RNG_SEED + 3)
    classes = ["round", "square", "tall"]
    y = rng.integers(0, 3, n_train + n_test)
    ids = [f"{v:06x}" for v in rng.choice(16 ** 6, n_train + n_test, replace=False)]
    onehot = {c: (y[n_train:] == k).astype(int) for k, c in enumerate(classes)}
    folder = competition(root, "images-labels", "multi-class-log-loss",
                         pd.DataFrame({"id": ids[:n_train], "breed": np.asarray(classes)[y[:n_train]]}),
                         pd.DataFrame({"id": ids[n_train:], **onehot}),
                         pd.DataFrame({"id": ids[n_train:], **{c: 1 / 3 for c in classes}}), train_name="labels.csv")
    for i, (name, cls) in enumerate(zip(ids, y)):
        split = "train" if i < n_train else "test"
        (folder / "prepared" / "public" / split).mkdir(exist_ok=True)
        _picture(rng, int(cls)).save(folder / "prepared" / "public" / split / f"{name}.png")
    return folder


def images_with_extension(root: Path, n_train: int = 90, n_test: int = 30) -> Path:
    """aerial-cactus / plant-pathology's shape: the id carries the file's extension
    (``image_id``: ``img_3.jpg``), both splits in one ``images/`` folder, the training
    table holds the one-hot label columns, mean column-wise ROC AUC; no test.csv (the
    sample submission lists the test images)."""
    rng = np.random.default_rng(RNG_SEED + 4)
    labels = ["healthy", "rust", "scab"]
    y = rng.integers(0, 3, n_train + n_test)
    ids = [f"img_{i}.jpg" for i in range(n_train + n_test)]
    onehot = (y[:, None] == np.arange(3)[None, :]).astype(int)
    folder = competition(root, "images-extension", "mean-column-wise-roc-auc",
                         pd.DataFrame({"image_id": ids[:n_train], **dict(zip(labels, onehot[:n_train].T))}),
                         pd.DataFrame({"image_id": ids[n_train:], **dict(zip(labels, onehot[n_train:].T))}),
                         pd.DataFrame({"image_id": ids[n_train:], **{c: 0.25 for c in labels}}))
    (folder / "prepared" / "public" / "images").mkdir()
    for name, cls in zip(ids, y):
        _picture(rng, int(cls)).convert("RGB").save(folder / "prepared" / "public" / "images" / name, quality=95)
    return folder


BUILDERS = {"text-classes": text_classes, "text-labels": text_labels, "table-values": table_values,
            "images-labels": images_named_by_id, "images-extension": images_with_extension}
