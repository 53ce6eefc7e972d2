"""Whether a submission can be graded, checked as MLE-bench's graders check it, and the
submission's predictions aligned with the answers' rows.

MLE-bench's ``Grader`` marks a submission invalid when its competition's ``grade.py``
raises, whether by an explicit ``InvalidSubmissionError`` or by a scikit-learn error on
bad input (NaN, a length mismatch, a non-numeric cell). Here each of those failures is
one ``InvalidSubmission`` whose message says what to change:

- the columns: the id column and every target column (with ``exact_columns``, nothing
  else: leaf-classification, plant-pathology, spooky-author and jigsaw refuse extras);
- the rows: not empty, as many as the answers, no id twice, exactly the answers' ids
  (read as the answers' type, so ``7`` and ``7.0`` are one id);
- the cells: finite numbers where the metric needs numbers; labels that are labels (a
  class ``2.5`` is refused where the answers hold whole numbers); probabilities in
  ``[0, 1]`` where the grader asks; rows summing to one (within 1e-6) for multi-class
  log loss; no negative values for RMSLE.

``reference`` is the answers when grading. The same check runs against the sample
submission (its ids and columns are the answers'), which is how an agent can check a
submission without seeing the answers.

Both frames should be read with ``read_csv`` here (MLE-bench's reading: floats read
back exactly), so that a label reads the same way on both sides.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Sequence

import numpy as np
import pandas as pd

__all__ = ["InvalidSubmission", "read_csv", "check_submission", "text_labels", "ROW_SUM_TOLERANCE"]

ROW_SUM_TOLERANCE = 1e-6  # MLE-bench's multi-class graders: |sum of a row - 1| <= 1e-6


class InvalidSubmission(ValueError):
    """The submission cannot be graded; the message (one line) says what to change."""


_ROUND_TRIP = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


def read_csv(path: str | Path | IO[bytes], nrows: int | None = None) -> pd.DataFrame:
    """A CSV read as MLE-bench reads submissions and answers: a float reads back to the
    value it was written as (``float_precision="round_trip"``, which pandas 3 does by
    default and deprecates asking for). ``path``: a file name or a binary file object;
    ``nrows``: read at most so many data rows (None: all)."""
    return pd.read_csv(path, nrows=nrows, **_ROUND_TRIP)


def _cell(value) -> str:
    """A cell as a reason shows it: ``2.5``, ``'high'``, ``nan`` (not ``np.float64(2.5)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def text_labels(values: pd.Series) -> pd.Series:
    """Labels as text, a missing cell as ``"nan"``: what ``astype(str)`` gave under
    pandas 2, which MLE-bench's text graders were written against (pandas 3 keeps it
    missing, and a missing label never equals another)."""
    return values.map(lambda v: "nan" if pd.isna(v) else str(v)).astype(object)


def _as_reference(values: pd.Series, like: pd.Series, column: str) -> pd.Series:
    """``values`` read as the type of ``like`` (the reference's column): numbers as
    numbers (whole numbers where ``like`` holds integers), anything else as text."""
    if pd.api.types.is_numeric_dtype(like) and not pd.api.types.is_bool_dtype(like):
        numbers = pd.to_numeric(values, errors="coerce").astype(float)
        bad = ~np.isfinite(numbers.to_numpy())  # rows are counted from 1, in file order
        if bad.any():
            row = int(np.argmax(bad))
            raise InvalidSubmission(f"column {column!r} must hold finite numbers; row {row + 1} "
                                    f"holds {_cell(values.iloc[row])}")
        if pd.api.types.is_integer_dtype(like):
            fractional = (numbers != np.round(numbers)).to_numpy()
            if fractional.any():
                row = int(np.argmax(fractional))
                raise InvalidSubmission(f"column {column!r} holds whole-number labels (like {like.iloc[0]}); "
                                        f"row {row + 1} holds {_cell(values.iloc[row])}")
            return numbers.astype("int64")
        return numbers
    return text_labels(values)


def _numbers(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The ``columns`` as floats; ``InvalidSubmission`` naming the first cell that is
    empty, not a number, or infinite."""
    out = {}
    for c in columns:
        numbers = pd.to_numeric(frame[c], errors="coerce").astype(float)
        bad = ~np.isfinite(numbers.to_numpy())
        if bad.any():
            row = int(np.argmax(bad))
            raise InvalidSubmission(f"column {c!r} must hold finite numbers (no empty cells, NaN or inf); "
                                    f"row {row + 1} holds {_cell(frame[c].iloc[row])}")
        out[c] = numbers
    return pd.DataFrame(out, index=frame.index)


def _check_columns(submission: pd.DataFrame, id_column: str, targets: Sequence[str], exact: bool) -> None:
    needed = [id_column, *targets]
    shown = ", ".join(needed) if len(needed) <= 8 else ", ".join(needed[:8]) + f", ... ({len(needed)} in all)"
    if submission.columns.duplicated().any():
        dup = submission.columns[submission.columns.duplicated()][0]
        raise InvalidSubmission(f"column {dup!r} appears twice; keep one (the header of sample_submission.csv: {shown})")
    missing = [c for c in needed if c not in submission.columns]
    if missing:
        raise InvalidSubmission(f"missing column(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}; "
                                f"the header must be that of the sample submission: {shown}")
    extra = [c for c in submission.columns if c not in needed]
    if exact and extra:
        raise InvalidSubmission(f"unexpected column(s) {extra[:5]}; this competition takes exactly the "
                                f"sample submission's columns: {shown}")


def _check_ids(submission: pd.DataFrame, reference: pd.DataFrame, id_column: str) -> pd.Series:
    """The submission's ids read as the reference's, checked to be exactly its ids."""
    if submission[id_column].isna().any():
        row = int(np.argmax(submission[id_column].isna().to_numpy()))
        raise InvalidSubmission(f"row {row + 1} has no {id_column!r}; every row needs the id of a test row")
    ids = _as_reference(submission[id_column], reference[id_column], id_column)
    if ids.duplicated().any():
        raise InvalidSubmission(f"{id_column!r} {_cell(ids[ids.duplicated()].iloc[0])} appears more than once; "
                                "give one row per test id")
    expected = set(reference[id_column])
    unknown = [i for i in ids if i not in expected]
    if unknown or len(ids) != len(reference):
        absent = len(expected - set(ids))
        raise InvalidSubmission(f"the {id_column!r} values must be exactly those of the sample submission "
                                f"({len(reference)} rows); got {len(ids)} rows, {len(unknown)} unknown ids "
                                f"(e.g. {_cell(unknown[0])}) and {absent} missing" if unknown else
                                f"the {id_column!r} values must be exactly those of the sample submission "
                                f"({len(reference)} rows); got {len(ids)} rows, {absent} ids missing")
    return ids


def check_submission(submission: pd.DataFrame, reference: pd.DataFrame, *, id_column: str,
                     target_columns: Sequence[str], predicts: str, exact_columns: bool = False,
                     probabilities_in_range: bool = False, rows_sum_to_one: bool = False,
                     non_negative: bool = False) -> pd.DataFrame:
    """Check ``submission`` against ``reference`` (the answers, or the sample
    submission) and return its target columns in the reference's row order.

    Args:
        submission: the submission as read (``read_csv``).
        reference: the answers (when grading) or the sample submission (when an agent
            checks its work): its ids are the test ids.
        id_column, target_columns: the columns the grader reads.
        predicts: ``probability`` or ``value`` (finite numbers), or ``label`` (read
            as the reference's labels: whole numbers stay whole).
        exact_columns: no columns beyond the id and the targets.
        probabilities_in_range: every target cell in [0, 1].
        rows_sum_to_one: each row's targets sum to 1 within ``ROW_SUM_TOLERANCE``.
        non_negative: no target cell below 0.

    Returns:
        The target columns, indexed and ordered by the reference's ids.

    Raises:
        InvalidSubmission: the first rule broken, with what to change.

    Example::

        >>> ref = pd.DataFrame({"id": [1, 2], "p": [0, 1]})
        >>> check_submission(pd.DataFrame({"id": [2, 1], "p": [0.9, 0.2]}), ref,
        ...                  id_column="id", target_columns=["p"], predicts="probability")["p"].tolist()
        [0.2, 0.9]
    """
    targets = list(target_columns)
    _check_columns(submission, id_column, targets, exact_columns)
    if submission.empty:
        raise InvalidSubmission(f"the submission has no rows; it needs one per test id ({len(reference)} rows)")
    ids = _check_ids(submission, reference, id_column)
    if predicts == "label":
        values = pd.DataFrame({c: _as_reference(submission[c], reference[c], c) for c in targets})
    else:
        values = _numbers(submission, targets)
    if probabilities_in_range:
        outside = (values < 0) | (values > 1)
        if outside.to_numpy().any():
            row, col = np.argwhere(outside.to_numpy())[0]
            raise InvalidSubmission(f"column {targets[col]!r} holds probabilities, in [0, 1]; row {row + 1} holds "
                                    f"{_cell(values.iloc[row, col])} (clip to [0, 1])")
    if rows_sum_to_one:
        sums = values.sum(axis=1).to_numpy()
        off = ~np.isclose(sums, 1.0, rtol=0, atol=ROW_SUM_TOLERANCE)
        if off.any():
            row = int(np.argmax(off))
            raise InvalidSubmission(f"each row's class probabilities must sum to 1 (within {ROW_SUM_TOLERANCE:g}); "
                                    f"row {row + 1} sums to {sums[row]:.8g} (divide each row by its sum)")
    if non_negative:
        below = (values < 0).to_numpy()
        if below.any():
            row, col = np.argwhere(below)[0]
            raise InvalidSubmission(f"column {targets[col]!r} must not be negative (a log is taken); row {row + 1} "
                                    f"holds {_cell(values.iloc[row, col])} (clip at 0)")
    values.index = ids.to_numpy()
    return values.loc[reference[id_column].to_numpy()]
