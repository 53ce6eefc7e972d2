"""Experiment runs: what an agent may ask for, what the operator allows, what comes back.

Three parties set a run, and each sets only its own part (docs/threat-model.md):

- ``RunRequest`` is the agent's: *what* to run (name, command, resources, timeout).
  It is validated where it enters (the ``launch_experiment`` tool): unknown fields
  (``sandbox``, ``hide``, ``network``...) are refused, not ignored, and values out of
  range are the model's error, shown to it.
- ``RunPolicy`` is the operator's: the sandbox, the network, memory, disk, process
  and time ceilings, extra read-only mounts, environment variables passed through.
  It comes from the command line, a sweep file or the cluster config, is kept in the
  operator's area of the bus (``bus.operator``), never in a file a role can write, and
  no request can change it.
- ``RunSpec`` is the framework's: a request checked against the policy and the budget
  left (``resolve``), with the run's id. Only a ``RunSpec`` is ever executed.

A run's id is the name the agent gives it, unique in its project: the first
``run_requested`` event for a name owns it, a later request under a taken name is
refused (the agent picks a new name), so every attempt has its own folder
(``experiments/<id>/``) and a run with a result is never run again or overwritten.
"""

from __future__ import annotations

import math
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .blacklist import blocked_source

# Seconds of budget under which nothing new starts: no run (here), no tool that runs
# (actors.tools), no model call (actors.agent), no decision (actors.state.check_stop;
# the breaker saw the baseline decide 3 nodes in the last 0.8 s whose runs were refused).
MIN_LEFT_S = 1.0

__all__ = ["RunPolicy", "RunRequest", "RunResult", "RunSpec", "RunStatus", "ScratchFile", "make_spec", "record_result",
           "resolve", "NAME_PATTERN"]

# Lower-case letters, digits, '_' and '-' (a folder name on every filesystem).
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,47}$"
RESOURCE_STEP = 0.0001  # the smallest quantity of a resource Ray schedules
RunStatus = Literal["ok", "failed", "timeout", "oom", "invalid", "lost", "refused"]


class RunRequest(BaseModel):
    """What an agent may ask for. Every field is checked; any other field is refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(pattern=NAME_PATTERN, description="The run's id: new in the project, its folder's name.")
    command: str = Field(min_length=1, max_length=8000, description="Shell command, run in experiments/<id>/.")
    gpus: float = Field(default=0, ge=0, le=64)
    cpus: float = Field(default=1, gt=0, le=512)
    memory_mb: int | None = Field(default=None, gt=0, le=4_194_304, description="Default: the operator's.")
    timeout_s: float = Field(default=3600, gt=0, le=30 * 86400)

    @field_validator("command")
    @classmethod
    def _no_nul(cls, command: str) -> str:
        if "\x00" in command:  # no process can be started with one (execve): the model's error, not the sandbox's
            raise ValueError("the command holds a NUL byte (\\x00): send it as plain text")
        return command

    @field_validator("gpus", "cpus")
    @classmethod
    def _ray_quantity(cls, value: float, info) -> float:
        # Ray's rules for a resource quantity (ray/_common/ray_option_utils.py): steps of
        # 0.0001, and a fraction only of one unit (a whole number above 1).
        if value and value < RESOURCE_STEP:
            raise ValueError(f"{info.field_name} must be 0 or at least {RESOURCE_STEP} (Ray counts in steps of it)")
        if value > 1 and not float(value).is_integer():
            raise ValueError(f"{info.field_name} above 1 must be a whole number (a fraction is of one unit: 0.5)")
        return round(value, 4)


class RunPolicy(BaseModel):
    """The operator's rules for every run of a project. Never read from a model or from
    a file a role can write (it lives in the job, ``cluster.job``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    sandbox: Literal["bwrap", "none"] = Field(
        default="bwrap", description="bwrap: every run in a bubblewrap sandbox (cluster.sandbox), refused where "
        "it cannot start one; none: unsandboxed, for code the operator trusts (`--allow-unsandboxed`).")
    network: bool = Field(default=False, description="Runs may reach the network (off: a private network namespace).")
    memory_mb: int = Field(default=4096, gt=0, description="A run's memory when its request names none.")
    max_memory_mb: int = Field(default=65536, gt=0, description="The most memory a request may ask for.")
    max_gpus: float = Field(default=8, ge=0)
    max_cpus: float = Field(default=64, gt=0)
    max_timeout_s: float = Field(default=24 * 3600, gt=0, description="Longer requests are cut to this.")
    tmp_mb: int = Field(default=1024, gt=0, description="Size of a run's private /tmp (in memory: it is added "
                        "to the memory Ray reserves for the run).")
    disk_mb: int = Field(default=20480, gt=0, description="What a run may write into its folder (its scratch "
                         "folder: a run past it is killed).")
    max_files: int = Field(default=100_000, gt=0, description="Files and folders a run may make in its folder.")
    max_procs: int = Field(default=512, gt=0, description="Processes and threads a run may have at once.")
    output_cap_bytes: int = Field(default=1_000_000, gt=0, description="Output kept on the bus (then the tail).")
    ro_mounts: tuple[str, ...] = Field(default=(), description="Extra host paths runs see read-only (datasets, "
                                       "weights). A path that holds a task's private answers is refused.")
    env: tuple[str, ...] = Field(default=(), description="Names of host environment variables passed to runs "
                                 "(besides the fixed allow-list of cluster.sandbox).")
    seed: int = Field(default=0, description="Exported to runs as AISCI_SEED (a sweep's seed axis).")
    blocked_sources: tuple[str, ...] = Field(default=(), description="Sites no command may name (a paper's "
                                             "blacklist.txt, `aisci paper`): such a run is refused (actors.blacklist).")
    placement_wait_s: float = Field(default=60, ge=0, description="How long a run no node can hold waits for "
                                    "one (an autoscaler adding it) before it is refused with the reason.")


class RunSpec(BaseModel):
    """A run the framework executes: a request resolved against the policy (``resolve``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="The run's name: its folder experiments/<id>/.")
    command: str
    gpus: float
    cpus: float
    memory_mb: int
    timeout_s: float
    policy: RunPolicy
    hidden: tuple[str, ...] = Field(default=(), description="Host paths no run may see (a task's private "
                                    "answers): an allowed mount that holds one is refused. Not shown to agents.")
    deadline: float | None = Field(default=None, description="When the project's wall-clock budget ends (seconds "
                                   "since the epoch): a run that starts late, after waiting for resources, gets "
                                   "only what is left (measured: --budget 10s ended at 20 s, runs given 8 s at "
                                   "dispatch started 10 s later).")

    def time_limit_s(self, now: float) -> float:
        """The run's time limit if it starts at ``now``: its timeout, cut to the deadline."""
        return self.timeout_s if self.deadline is None else min(self.timeout_s, self.deadline - now)


class ScratchFile(BaseModel):
    """An output a run left in its scratch folder (too big, or too many, for the bus)."""

    name: str
    size_bytes: int


class RunResult(BaseModel):
    """What a run returned: written as experiments/<id>/result.json and as its
    ``experiment`` event (status and metrics as columns)."""

    id: str
    status: RunStatus
    reason: str = Field(default="", description="Why the run is not ok, in a sentence that says what to change.")
    exit_code: int | None = None
    duration_s: float = 0.0
    metrics: dict[str, float] = Field(default_factory=dict, description="Finite numbers from metrics.json.")
    output_tail: str = ""
    node: str = ""
    scratch_dir: str = Field(default="", description="The run's scratch folder on the host (what it wrote).")
    left_in_scratch: list[ScratchFile] = Field(default_factory=list, description="Outputs not put on the bus "
                                               "(too big or too many): they stay in the scratch folder.")
    skipped: dict[str, str] = Field(default_factory=dict, description="Outputs not taken, and why (a link, a "
                                    "FIFO, a device, a folder, the name of a framework file).")


def resolve(request: RunRequest, policy: RunPolicy, time_left_s: float | None = None,
            hidden: tuple[str, ...] = ()) -> RunSpec | RunResult:
    """Check ``request`` against the operator's ``policy``: a ``RunSpec`` to execute, or
    a ``refused`` ``RunResult`` whose reason tells the agent what to change.

    The timeout is cut to the policy's ceiling and to the wall-clock budget left
    (``time_left_s``), and the spec carries the budget's end (``deadline``): a run that
    waits for resources gets only what is left when it starts, so that no run outlives
    its project's budget.
    """
    def refuse(why: str) -> RunResult:
        return RunResult(id=request.name, status="refused", reason=why)

    memory = request.memory_mb or policy.memory_mb
    if (source := blocked_source(request.command, policy.blocked_sources)) is not None:
        return refuse(f"the command names {source}, a source this paper's blacklist forbids (PaperBench "
                      "disqualifies a reproduction that uses one)")
    if request.gpus > policy.max_gpus:
        return refuse(f"asks for {request.gpus:g} GPUs; the operator allows at most {policy.max_gpus:g} per run")
    if request.cpus > policy.max_cpus:
        return refuse(f"asks for {request.cpus:g} CPUs; the operator allows at most {policy.max_cpus:g} per run")
    if memory > policy.max_memory_mb:
        return refuse(f"asks for {memory} MB of memory; the operator allows at most {policy.max_memory_mb} MB")
    timeout, deadline = min(request.timeout_s, policy.max_timeout_s), None
    if time_left_s is not None:
        if time_left_s < MIN_LEFT_S:
            return refuse("the project's wall-clock budget is spent")
        timeout, deadline = min(timeout, math.floor(time_left_s)), time.time() + time_left_s
    return RunSpec(id=request.name, command=request.command, gpus=request.gpus, cpus=request.cpus,
                   memory_mb=memory, timeout_s=timeout, policy=policy, hidden=hidden, deadline=deadline)


def record_result(view, result: RunResult, gpus: float = 0.0) -> dict:
    """Write ``experiments/<id>/result.json``, then the run's ``experiment`` event (its
    ``run``, ``status`` and metrics as columns): the event is what marks the run done.
    ``view`` is a system view of the project. Returns the event row."""
    path = f"experiments/{result.id}/result.json"
    why = f": {result.reason}" if result.reason else ""
    view.write(path, result.model_dump_json(indent=1), summary=f"{result.status}{why}"[:200])
    return view.record("experiment", f"{result.id}: {result.status} in {result.duration_s:.1f} s{why}"[:300], path=path,
                       run=result.id, status=result.status,
                       metrics={**result.metrics, "duration_s": result.duration_s, "gpus": gpus})


def make_spec(name: str, command: str, policy: RunPolicy | None = None, hidden: tuple[str, ...] = (),
              **resources: float) -> RunSpec:
    """A ``RunSpec`` for a request the framework itself makes (benchmarks, checks, tests),
    through the same checks as an agent's. Raises ``ValueError`` if the policy refuses it."""
    spec = resolve(RunRequest(name=name, command=command, **resources), policy or RunPolicy(), hidden=hidden)
    if isinstance(spec, RunResult):
        raise ValueError(f"run {name!r} refused: {spec.reason}")
    return spec
