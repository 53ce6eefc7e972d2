"""The ``run`` tool: a short shell command in the project's code, for quick checks
(does it import, what shape is the data, does the first epoch run), its output back
to the model in the same step. Long work stays ``launch_experiment``.

The agent does not know where the command executes: an ``Executor`` is passed in
(``Agent(executor=...)``; ``cluster.quick_run.SandboxExecutor`` runs it in the
experiments' sandbox under the operator's run policy, read from the operator's area,
never from a file an agent can write). Without one the tool is not offered.

What the command changes under ``code/`` (it runs in a scratch copy) comes back as
bytes and is written here, through the agent's own ``RoleView``: a new version by
that agent, in its scope; a file outside its scope is reported, never written.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, Field, field_validator

from bus import BusRefusal, RoleView

__all__ = ["Executor", "QuickRequest", "QuickResult", "render", "write_back", "DEFAULT_TIMEOUT_S", "MAX_TIMEOUT_S",
           "OUTPUT_HEAD_CHARS", "OUTPUT_TAIL_CHARS"]

DEFAULT_TIMEOUT_S = 60.0
MAX_TIMEOUT_S = 300.0  # longer work is an experiment (launch_experiment): queued, fairly shared, resumable
OUTPUT_HEAD_CHARS, OUTPUT_TAIL_CHARS = 2_000, 6_000  # a long output is shown as its head and its tail


class QuickRequest(BaseModel):
    """One ``run`` call, checked: what the executor is asked to do."""

    project: str
    instance: str = Field(description="The agent instance asking (names its scratch folder).")
    command: str = Field(min_length=1, max_length=8000)
    timeout_s: float = Field(gt=0, le=MAX_TIMEOUT_S)
    folders: tuple[str, ...] = Field(description="The project folders the role may read: the only ones the "
                                     "command sees (code/ as a writable copy).")

    @field_validator("command")
    @classmethod
    def _plain(cls, command: str) -> str:
        if "\x00" in command:
            raise ValueError("the command holds a NUL byte (\\x00): send it as plain text")
        if not command.strip():
            raise ValueError("the command is blank")
        return command


class QuickResult(BaseModel):
    """What the executor returns."""

    status: Literal["ok", "failed", "timeout", "killed", "refused"]
    reason: str = Field(default="", description="Why not ok, in a sentence that says what to change.")
    exit_code: int | None = None
    duration_s: float = 0.0
    output: str = Field(default="", description="stdout and stderr together, head and tail when long.")
    output_bytes: int = Field(default=0, description="The output's whole size.")
    changed: dict[str, bytes] = Field(default_factory=dict, description="Files under code/ the command made or "
                                      "changed (path relative to code/), to write back through the agent's view.")
    deleted: list[str] = Field(default_factory=list, description="Files under code/ it removed (not removed on the bus).")
    skipped: dict[str, str] = Field(default_factory=dict, description="Outputs not taken, and why.")


class Executor(Protocol):
    """Runs one checked ``run`` call somewhere safe and returns what happened; never
    raises for the command's own failure (that is a result)."""

    def __call__(self, request: QuickRequest) -> QuickResult: ...


def write_back(view: RoleView, result: QuickResult, command: str) -> list[str]:
    """Write the files the command made or changed under code/ as versions by this
    agent; returns one line per file (written, or not and why)."""
    lines = []
    for rel, data in sorted(result.changed.items()):
        path = f"code/{rel}"
        try:
            row = view.write(path, data, summary=f"written by run: {command}"[:200])
            lines.append(f"wrote {row['path']} (version {row['version']}, {row['size']} bytes)")
        except BusRefusal as e:
            lines.append(f"not written: {path}: {str(e)[:300]}")
    lines += [f"not written: code/{rel}: {why}" for rel, why in sorted(result.skipped.items())]
    lines += [f"not removed on the bus (files are never deleted): code/{rel}" for rel in result.deleted]
    return lines


def render(result: QuickResult, files: list[str]) -> str:
    """The tool's answer: how it ended, the output, what became of its files."""
    if result.status == "refused":
        return f"ERROR: run refused: {result.reason}"
    head = {"ok": f"exit code 0 in {result.duration_s:.2f} s",
            "failed": f"exit code {result.exit_code} in {result.duration_s:.2f} s",
            "timeout": f"killed after its {result.duration_s:.0f} s time limit (timeout_s; longer work: "
                       "launch_experiment)",
            "killed": f"killed after {result.duration_s:.2f} s: {result.reason}"}[result.status]
    if result.status == "failed" and result.reason:
        head += f" ({result.reason})"
    shown = result.output if result.output else "(no output)"
    size = f"{result.output_bytes} bytes" + (", head and tail shown" if len(result.output) < result.output_bytes else "")
    parts = [head, f"--- output ({size}) ---", shown.rstrip("\n")]
    if files:
        parts += ["--- files ---", *files]
    return "\n".join(parts)
