"""What a task's public data is, derived from its files: a table, text, or images.

A pipeline (the built-in baseline, or an agent) needs more than the submission's
columns: where the training labels are, what the inputs of a row are, and where the
test rows come from. ``derive_data`` reads that off ``prepared/public/`` as MLE-bench's
competitions lay it out, and says in one line what is missing where it cannot:

- **the training table**: ``train.csv``, else ``train_labels.csv``, else ``labels.csv``
  (dog-breed-identification), else the only other CSV. Its id column is the task's id
  column where it has one, else its first column.
- **the labels** in it: either the submission's target columns themselves (digits,
  jigsaw's six label columns, plant-pathology's four), or, for one probability column
  per class, one column whose values are those class names (spooky-author's
  ``author``: ``EAP``/``HPL``/``MWS``; dog-breed's ``breed``), matched as text, so a
  class named ``New York, N.Y.`` is a class like any other.
- **the test rows**: ``test.csv`` where it holds the id column, else the sample
  submission's ids (aerial-cactus-identification lists its test images only there).
- **the kind**:

  - ``images``: a folder under ``prepared/public`` (two levels deep at most) holds a
    file per training id, named ``<id>`` plus an image extension (plant-pathology:
    ``images/Train_0.jpg`` for ``image_id`` ``Train_0``) or ``<id>`` itself where the
    id carries its extension (aerial-cactus: ``train/0004be2c...257b.jpg``);
    the test ids map to files the same way, in the same folder or another.
  - ``text``: a column of the training table (not a label) holds prose: most cells
    have a space and the median cell is at least ``TEXT_MIN_CHARS`` characters
    (spooky's ``text``, jigsaw's ``comment_text``, detecting-insults' ``Comment``,
    which is also its id column). Every such column that the test rows also have.
  - ``tabular``: otherwise, when the training table has feature columns beside its id
    and labels and the test rows have them too.

Only the head of each table is read (``SNIFF_ROWS``) and a few ids are looked up on
disk (``PROBE_IDS``), so deriving costs milliseconds on a jigsaw-sized task.

Example::

    >>> public = Path("benchmarks/mlebench/tasks/digits/prepared/public")
    >>> spec = derive_data(public, public / "sample_submission.csv", "id", ["target"])
    >>> spec.kind, spec.train_csv, spec.label_column
    ('tabular', 'train.csv', None)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

import pandas as pd
from pydantic import BaseModel, Field

from .layout import InvalidTask

__all__ = ["DataSpec", "ImageFiles", "IMAGE_SUFFIXES", "derive_data"]

SNIFF_ROWS = 2000  # rows read from each table to tell the kind (a 160k-row jigsaw train.csv reads in 30 ms)
PROBE_IDS = 20  # ids looked up on disk to tell how ids map to image files
TEXT_MIN_CHARS = 20  # median cell length of a prose column (ids, dates and categories are shorter)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")
_TRAIN_NAMES = ("train.csv", "train_labels.csv", "labels.csv")


class ImageFiles(BaseModel):
    """Where the images of one split are: ``<folder>/<id><suffix>``, relative to the
    task's public folder (``task/`` on the bus)."""

    folder: str = Field(description="The folder, relative to prepared/public (`train`, `images`, ...).")
    suffix: str = Field(description="Appended to an id to name its file (`.png`); empty where ids carry it.")


class DataSpec(BaseModel):
    """What a pipeline needs to read a task's data; paths are relative to prepared/public."""

    kind: Literal["tabular", "text", "images"] = Field(description="What a row's inputs are.")
    train_csv: str = Field(description="The training table (labels, and features or text).")
    train_id_column: str = Field(description="Its id column (names the image file of a row).")
    label_column: str | None = Field(description="A column of the training table whose values are the class "
                                     "names, one per target column of the submission; None: the table holds "
                                     "the target columns themselves.")
    test_csv: str = Field(description="Where the test ids (and features or text) are: test.csv, or the "
                          "sample submission when the test inputs are files.")
    feature_columns: list[str] = Field(default_factory=list, description="tabular: the input columns, in both "
                                       "tables (text ones included; a pipeline encodes them).")
    text_columns: list[str] = Field(default_factory=list, description="text: the prose columns, in both tables.")
    train_images: ImageFiles | None = Field(default=None, description="images: the training images.")
    test_images: ImageFiles | None = Field(default=None, description="images: the test images.")


def _head(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, nrows=SNIFF_ROWS)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        why = f"not UTF-8 text at byte {e.start}: save the file as UTF-8" if isinstance(e, UnicodeDecodeError) \
            else str(e).splitlines()[0][:200]
        raise InvalidTask(f"{path}: not a readable CSV ({why})") from None


def _zips(public: Path) -> str:
    """A hint naming the zip archives in ``public`` (MLE-bench's raw downloads ship
    train.zip and test.zip; the tables and images must be unpacked first)."""
    zips = sorted(p.name for p in public.glob("*.zip"))
    return f"; {public} holds {', '.join(zips[:3])}: unpack it there (unzip -d {public} {zips[0]})" if zips else ""


def _train_table(public: Path, sample: str) -> Path:
    csvs = sorted(p for p in public.glob("*.csv") if p.name != sample and not p.name.startswith("test"))
    named = [public / n for n in _TRAIN_NAMES if (public / n).is_file()]
    if named:
        return named[0]
    if len(csvs) == 1:
        return csvs[0]
    raise InvalidTask(f"{public}: no training table: expected train.csv (or train_labels.csv, labels.csv) beside "
                      f"the sample submission; found {[p.name for p in csvs][:6] or 'no other CSV'}"
                      + _zips(public))


def _labels(train: pd.DataFrame, where: Path, targets: Sequence[str], predicts: str) -> str | None:
    """None where the training table holds every target column; else the one column
    whose values are the target columns' names (one probability column per class)."""
    if all(t in train.columns for t in targets):
        return None
    if predicts == "probability" and len(targets) > 1:
        names = set(targets)
        for c in train.columns:
            values = set(train[c].dropna().astype(str))
            if values and values <= names:  # one name is enough: a table sorted by class starts with one
                return c
    missing = [t for t in targets if t not in train.columns]
    padded = [c for c in train.columns if c != c.strip() and c.strip() in {t.strip() for t in missing}]
    if padded:
        raise InvalidTask(f"{where}: the column name {padded[0]!r} has spaces around it: remove them from the "
                          "header (column names are matched exactly)")
    raise InvalidTask(f"{where}: cannot find the labels: it lacks the target column(s) {missing[:5]} of the sample "
                      f"submission" + (", and no column of it holds only their names as values (one class per "
                                       "row)" if len(targets) > 1 else "") + f"; its columns: {list(train.columns)[:8]}")


def _is_text(values: pd.Series) -> bool:
    cells = values.dropna()
    if cells.empty or not (pd.api.types.is_object_dtype(cells) or pd.api.types.is_string_dtype(cells)):
        return False
    cells = cells.astype(str)
    return cells.str.len().median() >= TEXT_MIN_CHARS and cells.str.contains(" ").mean() >= 0.5


def _image_files(public: Path, ids: Sequence, near: Path | None = None) -> ImageFiles | None:
    """The folder and suffix under which the first ``PROBE_IDS`` ids all name a file;
    folders up to two levels deep, ``near`` (the training images' folder) first."""
    probe = [str(i) for i in list(ids)[:PROBE_IDS]]
    if not probe:
        return None
    folders = [d for d in sorted(public.glob("*")) + sorted(public.glob("*/*")) if d.is_dir()]
    if near is not None:
        folders.insert(0, near)
    for folder in folders:
        for suffix in ("", *IMAGE_SUFFIXES, *(s.upper() for s in IMAGE_SUFFIXES)):
            first = folder / f"{probe[0]}{suffix}"
            if first.suffix.lower() not in IMAGE_SUFFIXES or not first.is_file():
                continue
            if all((folder / f"{i}{suffix}").is_file() for i in probe):
                return ImageFiles(folder=folder.relative_to(public).as_posix(), suffix=suffix)
    return None


def _has_images(public: Path) -> str | None:
    for d in sorted(public.glob("*")) + sorted(public.glob("*/*")):
        if d.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir()):
            return d.relative_to(public).as_posix()
    return None


def derive_data(public: Path, sample_submission: Path, id_column: str, target_columns: Sequence[str],
                predicts: str = "label") -> DataSpec:
    """The ``DataSpec`` of the public folder ``public`` of a task whose submission
    (``sample_submission``: its path) has ``id_column`` and ``target_columns``;
    ``predicts``: the metric's ``label``, ``probability`` or ``value``.

    Raises:
        InvalidTask: no training table (or an empty one), no labels in it, no test rows, or neither
            features, text nor images to learn from (the message says what is missing).
    """
    public, sample_submission = Path(public), Path(sample_submission)
    train_path = _train_table(public, sample_submission.name)
    train = _head(train_path)
    if train.empty:
        raise InvalidTask(f"{train_path}: the training table has no rows")
    label = _labels(train, train_path, target_columns, predicts)
    train_id = id_column if id_column in train.columns else str(train.columns[0])
    test_path = public / "test.csv"
    test = _head(test_path) if test_path.is_file() else None
    if test is None or id_column not in test.columns:
        if not sample_submission.is_relative_to(public):
            raise InvalidTask(f"{public}: no test.csv with the id column {id_column!r}, and the sample submission "
                              "is not public: cannot tell the test rows" + _zips(public))
        test_path, test = sample_submission, _head(sample_submission)
    labels = set(target_columns) | ({label} if label else set())
    inputs = [c for c in train.columns if c not in labels]  # the id too: detecting-insults' id is its text
    common = dict(train_csv=train_path.name, train_id_column=train_id, label_column=label,
                  test_csv=test_path.relative_to(public).as_posix())
    # Images: a file per training id (checked first: an image task's table may hold metadata too).
    train_images = _image_files(public, train[train_id].tolist())
    if train_images is not None:
        test_images = _image_files(public, test[id_column].tolist(), near=public / train_images.folder)
        if test_images is None:
            raise InvalidTask(f"{public}: the training ids name images in {train_images.folder}/, but no folder "
                              f"holds a file per test id of {test_path.name} (looked for <folder>/<id> and "
                              f"<folder>/<id>{train_images.suffix or '.png'})")
        return DataSpec(kind="images", train_images=train_images, test_images=test_images, **common)
    text = [c for c in inputs if c in test.columns and _is_text(train[c])]
    if text:
        return DataSpec(kind="text", text_columns=text, **common)
    features = [c for c in inputs if c != train_id and c in test.columns]
    if features:
        return DataSpec(kind="tabular", feature_columns=features, **common)
    folder = _has_images(public)
    if folder is not None:
        raise InvalidTask(f"{public}: {folder}/ holds images, but no training id of {train_path.name} "
                          f"({train_id!r}, e.g. {str(train[train_id].iloc[0])!r}) names one: expected "
                          f"{folder}/<id> or {folder}/<id>.png (or .jpg...)")
    raise InvalidTask(f"{public}: nothing to learn from: {train_path.name} holds only ids and labels, "
                      f"{test_path.name} no feature the training table has, and no folder holds a file per id"
                      + _zips(public))
