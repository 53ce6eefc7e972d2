"""The ``check_reproduction`` tool: a paper project's agents reproduce their submission as
the grader will, before they finish, and read how it went.

PaperBench grades a fresh copy of the submission after ``bash reproduce.sh`` ran in a new
container under a time limit; a reproduction that only works in the agent's own folder
(a venv it made, a cache, an absolute path, a file written by hand) scores nothing. So the
check is that same reproduction (``cluster.paper_selfcheck``: the code path the project's
end uses, in the experiments' sandbox, under the operator's time limit), asked for from
inside a subtask. The agent does not know where it runs: the ``Executor`` it was given
(``actors.quick_run``) does it when it has a ``reproduce_submission`` method; without one
the tool is not offered.

What it did goes onto the bus, through the agent's own view, for every later agent to
read (``report/selfcheck.json``, ``report/selfcheck/reproduce.log``), and back to the
model as text: how the script ended, the files it wrote (with the small ones shown), the
head and tail of its log.
"""

from __future__ import annotations

import json
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from bus import BusRefusal, RoleView

__all__ = ["CHECK_JSON", "CHECK_LOG", "Reproducer", "SelfCheck", "record", "render"]

CHECK_JSON, CHECK_LOG = "report/selfcheck.json", "report/selfcheck/reproduce.log"
SHOWN_FILE_CHARS, SHOWN_TOTAL_CHARS = 4_000, 16_000  # outputs shown to the model whole, up to these


class SelfCheck(BaseModel):
    """One self-check reproduction: what the grader's reproduction would have done."""

    status: Literal["ok", "failed", "timeout", "missing", "refused"] = Field(
        description="ok: reproduce.sh exited 0; failed: another exit code (or the sandbox failed); timeout: killed "
        "at the time limit; missing: there is no submission/reproduce.sh; refused: not run, see reason.")
    reason: str = Field(default="", description="Why not ok, in a sentence that says what to change.")
    exit_code: int | None = None
    timeout_s: float = Field(default=0.0, description="The time limit it ran under, in seconds.")
    duration_s: float = 0.0
    log: str = Field(default="", description="reproduce.log: its head and tail when long.")
    log_bytes: int = 0
    outputs: dict[str, int] = Field(default_factory=dict, description="Files reproduce.sh wrote or changed "
                                    "(path in the submission -> bytes): what the judge reads as results.")
    shown: dict[str, str] = Field(default_factory=dict, description="The small text outputs, whole.")


class Reproducer(Protocol):
    """What an ``Executor`` that can self-check offers (``cluster.quick_run.SandboxExecutor``)."""

    def reproduce_submission(self, project: str, instance: str, timeout_s: float | None) -> SelfCheck: ...


def record(view: RoleView, check: SelfCheck) -> list[str]:
    """Write the check's outcome where the agents read it; returns one line per file
    (written, or not and why: a role that may not write report/ gets the text only)."""
    lines = []
    summary = _headline(check)
    for path, data in ((CHECK_LOG, check.log.encode()),
                       (CHECK_JSON, json.dumps(check.model_dump(exclude={"log"}), indent=1).encode())):
        try:
            row = view.write(path, data, summary=f"self-check: {summary}"[:200])
            lines.append(f"wrote {row['path']} (version {row['version']})")
        except BusRefusal as e:
            lines.append(f"not written: {path}: {str(e)[:200]}")
    return lines


def _headline(check: SelfCheck) -> str:
    return {"ok": f"reproduce.sh exited 0 in {check.duration_s:.1f} s",
            "failed": f"reproduce.sh exited {check.exit_code} in {check.duration_s:.1f} s",
            "timeout": f"reproduce.sh was killed at its {check.timeout_s:.0f} s time limit",
            "missing": "there is no submission/reproduce.sh: the grader's reproduction runs nothing",
            "refused": "not reproduced"}[check.status] + (f" ({check.reason})" if check.reason else "")


def render(check: SelfCheck, files: list[str]) -> str:
    """The tool's answer to the model."""
    if check.status == "refused":
        return f"ERROR: check_reproduction refused: {check.reason}"
    parts = [_headline(check) + " (a fresh copy of submission/, as the grader runs it)"]
    if check.outputs:
        parts.append("--- files it wrote ---")
        parts += [f"{rel} ({size} bytes)" for rel, size in sorted(check.outputs.items())]
    elif check.status != "missing":
        parts.append("--- it wrote no file: the judge finds no results to analyse ---")
    for rel, text in sorted(check.shown.items()):
        parts += [f"--- {rel} ---", text.rstrip("\n")]
    if check.status != "missing":
        size = f"{check.log_bytes} bytes" + (", head and tail shown" if len(check.log) < check.log_bytes else "")
        parts += [f"--- reproduce.log ({size}) ---", check.log.rstrip("\n") or "(empty)"]
    if files:
        parts += ["--- on the bus ---", *files]
    return "\n".join(parts)
