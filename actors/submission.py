"""Whether a submission file on the bus could be graded: MLE-bench's validity check,
run against the task's public sample submission, never against the answers.

The sample holds the test ids and the columns the grader reads, so the rules of
``benchmarks.mlebench.submission.check_submission`` apply to it unchanged: the id and
target columns (exactly them where the competition says so), one row per test id and
no other, finite numbers where the metric scores numbers, probabilities in [0, 1]
where the grader asks, class probabilities summing to one for multi-class log loss.
Which rules apply comes from ``task/task.json`` (written by the system from the
competition's config): a Lite competition's own grader where the ids and metric are
its, else the metric's rules. Each failure is one line that says what to change.

What a model points this at is untrusted, so the work is bounded before pandas sees
a byte: the path goes through the role's scopes; a file over ``MAX_CHECK_BYTES``
(by the bus's index) is refused unread, and no read passes the bus's own
``max_file_bytes``; a binary file, a header line over ``MAX_HEADER_BYTES`` or with
more than ``MAX_EXTRA_COLUMNS`` columns beyond the sample's is refused before it is
parsed; at most one row more than the sample's is parsed. Anything pandas or the rules
raise on such input is an invalid submission with its reason (MLE-bench: an error
while grading makes a submission invalid), never a crash of the agent.

    >>> check_on_bus(view).text()        # doctest: +SKIP
    'valid: 360 rows, columns id, target'
"""

from __future__ import annotations

import io
import json
import re
from typing import Literal

import pandas as pd
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from benchmarks.mlebench import COMPETITIONS, Competition, InvalidSubmission, read_csv
from bus import BusRefusal, RoleView

__all__ = ["SUBMISSION", "SubmissionCheck", "check_on_bus", "run_submissions",
           "MAX_CHECK_BYTES", "MAX_HEADER_BYTES", "MAX_EXTRA_COLUMNS"]

SUBMISSION = "submission/submission.csv"
TASK_SPEC = "task/task.json"
MAX_CHECK_BYTES = 64 * 2**20  # the bus's default max_file_bytes: no submission on the bus is larger
MAX_HEADER_BYTES = 2**20  # 1 MiB: 30,000 column names of 30 characters
MAX_EXTRA_COLUMNS = 1000  # MLE-bench ignores extra columns (most graders); a million only costs time
_BINARY_PROBE = 64 * 1024  # NUL bytes in the first 64 KiB: not a text file
_SAMPLE_NAME = re.compile(r"^sample_?submission[^/]*\.csv$", re.I)


class SubmissionCheck(BaseModel):
    """The outcome of checking one file."""

    path: str = Field(description="The bus path checked.")
    kind: Literal["valid", "invalid", "missing", "unchecked"] = Field(
        description="valid: it would be graded; invalid: it would not (reason says why); missing: no such file; "
                    "unchecked: the task gives nothing to check it against (no public sample submission).")
    reason: str = Field(default="", description="What to change (invalid, missing) or why it was not checked.")
    rows: int = Field(default=0, description="Data rows (valid only).")
    columns: list[str] = Field(default_factory=list, description="The header (valid only).")

    @property
    def valid(self) -> bool:
        return self.kind == "valid"

    def text(self) -> str:
        """What the ``check_submission`` tool answers: ``valid: N rows, columns ...``,
        ``invalid: <reason>``, or ``unchecked: <why>``."""
        if self.kind == "valid":
            shown = ", ".join(self.columns[:8]) + (f", ... ({len(self.columns)} in all)" if len(self.columns) > 8 else "")
            return f"valid: {self.rows} rows, columns {shown}"
        return f"{'unchecked' if self.kind == 'unchecked' else 'invalid'}: {self.reason}"


def check_on_bus(view: RoleView, path: str = SUBMISSION) -> SubmissionCheck:
    """Check the CSV at bus ``path`` as MLE-bench's grader would, against the task's
    sample submission (``task/task.json`` says where it is and which rules apply).

    Args:
        view: the caller's view; the file is read through its scopes.
        path: a bus path (untrusted: a model's argument).

    Returns:
        The ``SubmissionCheck``. Never raises for a bad file or path: a refusal by the
        bus (outside the scopes, a link, too large) is an invalid check with the bus's
        reason.

    Raises:
        BusFault: the bus's own storage failed (not the caller's doing).
    """
    path = str(path)
    try:
        if not view.exists(path):
            return SubmissionCheck(path=path, kind="missing", reason=f"there is no file {path}")
        too_large = _over_cap(view, path)
        if too_large:
            return SubmissionCheck(path=path, kind="invalid", reason=too_large)
        data = view.read_bytes(path)  # at most the bus's max_file_bytes (FileTooLarge)
    except BusRefusal as e:
        return SubmissionCheck(path=path, kind="invalid", reason=f"cannot read {path}: {e}")
    rules = _rules(view)
    if isinstance(rules, str):
        return SubmissionCheck(path=path, kind="unchecked", reason=rules)
    competition, sample = rules
    try:
        frame = _parse(data, sample)
        competition.check(frame, sample)
    except InvalidSubmission as e:
        return SubmissionCheck(path=path, kind="invalid", reason=str(e))
    except UnicodeDecodeError as e:
        return SubmissionCheck(path=path, kind="invalid", reason=f"the file is not UTF-8 text (byte "
                               f"{e.object[e.start:e.start + 1]!r}); write it with DataFrame.to_csv(index=False)")
    except Exception as e:  # noqa: BLE001 - whatever a hostile file makes pandas raise: the grader would fail too
        first = (str(e).splitlines() or [""])[0][:200]
        return SubmissionCheck(path=path, kind="invalid", reason=f"not a readable CSV ({type(e).__name__}: {first})")
    return SubmissionCheck(path=path, kind="valid", rows=len(frame), columns=[str(c) for c in frame.columns])


def run_submissions(view: RoleView) -> list[str]:
    """The runs' ``experiments/<run>/submission.csv`` this view may read (from the
    index): what a writer could copy into place."""
    return [p for p in view.list("experiments") if p.count("/") == 2 and p.endswith("/submission.csv")]


# -- the parts ------------------------------------------------------------------------


def _over_cap(view: RoleView, path: str, cap: int = MAX_CHECK_BYTES) -> str:
    """Why the file is too large to check ('' if it is not), by the index's size: so
    that it is refused before a byte of it is read."""
    table = view.workspace_map()
    sizes = table.filter(pc.equal(table.column("path"), path.strip("/"))).column("size").to_pylist()
    if sizes and sizes[0] is not None and sizes[0] > cap:
        return (f"{path} is {sizes[0]} bytes, over the {cap // 2**20} MiB a submission check reads; a submission "
                "holds one row per test id and its predictions, nothing else")
    return ""


def _rules(view: RoleView) -> tuple[Competition, pd.DataFrame] | str:
    """The task's grader rules and its sample submission, or why there are none."""
    try:
        spec = json.loads(view.read(TASK_SPEC))
        id_column, targets = str(spec["id_column"]), [str(t) for t in spec["target_columns"]]
        metric = str(spec["metric"])
    except (BusRefusal, ValueError, KeyError, TypeError) as e:
        return f"the task has no readable {TASK_SPEC} ({str(e)[:120]}), so there are no rules to check against"
    sample_path = _sample_path(view, spec)
    if sample_path is None:
        return ("this task's sample submission is not among its public files, so the ids cannot be checked "
                f"here; make sure the file has the columns {', '.join([id_column, *targets][:8])}")
    try:
        sample = read_csv(io.BytesIO(view.read_bytes(sample_path)))
    except (BusRefusal, ValueError, UnicodeDecodeError) as e:
        return f"the sample submission {sample_path} cannot be read ({str(e)[:120]})"
    known = COMPETITIONS.get(str(spec.get("competition_id")))
    if known is not None and known.metric_name == metric and known.id_column == id_column:
        competition = known  # its own rules (exact columns, probabilities in range or not)
    else:
        try:
            competition = Competition(id=str(spec.get("competition_id") or "task"), grader_name=metric,
                                      metric_name=metric, id_column=id_column, target_columns=tuple(targets),
                                      n_targets=len(targets), answers="", sample_submission=sample_path)
            competition.metric  # noqa: B018 - a metric name we know (UnknownMetric is a KeyError)
        except (ValueError, KeyError) as e:
            return f"{TASK_SPEC} names rules this check does not know ({str(e)[:120]})"
    try:
        competition.targets(sample)
    except ValueError as e:
        return f"the sample submission {sample_path} does not match {TASK_SPEC} ({str(e)[:160]})"
    return competition, sample


def _sample_path(view: RoleView, spec: dict) -> str | None:
    """``task/<sample>`` as task.json names it; for a task.json written before it did,
    ``task/sample_submission.csv`` or the one public file named like a sample submission."""
    if "sample_submission" in spec:
        named = spec["sample_submission"]
        return f"task/{named}" if isinstance(named, str) and named else None
    found = [p for p in view.list("task") if p.count("/") == 1 and _SAMPLE_NAME.match(p.split("/")[1])]
    if "task/sample_submission.csv" in found:
        return "task/sample_submission.csv"
    return found[0] if len(found) == 1 else None


def _parse(data: bytes, sample: pd.DataFrame) -> pd.DataFrame:
    """The CSV in ``data``, read as the grader reads it, once it is shown to be a
    bounded text table. Raises ``InvalidSubmission`` with what to change."""
    if not data or data.isspace():
        raise InvalidSubmission("the file is empty; write the sample submission's header and one row per test id")
    if b"\x00" in data[:_BINARY_PROBE]:
        raise InvalidSubmission("the file is binary, not a CSV text file; write it with DataFrame.to_csv(index=False)")
    end = data.find(b"\n", 0, MAX_HEADER_BYTES + 1)
    if end < 0 and len(data) > MAX_HEADER_BYTES:
        raise InvalidSubmission(f"its header line is over {MAX_HEADER_BYTES // 2**20} MiB; the header must be the "
                                "sample submission's")
    header = data if end < 0 else data[:end]
    limit = len(sample.columns) + MAX_EXTRA_COLUMNS
    if header.count(b",") + 1 > limit:
        raise InvalidSubmission(f"its header has {header.count(b',') + 1} columns; the sample submission has "
                                f"{len(sample.columns)}: write only its columns")
    frame = read_csv(io.BytesIO(data), nrows=len(sample) + 1)
    if len(frame) > len(sample):
        raise InvalidSubmission(f"the file has more than {len(sample)} data rows; the sample submission has "
                                f"{len(sample)}, one per test id: give each test id one row")
    return frame
