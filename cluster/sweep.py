"""``aisci sweep sweep.yaml``: a grid of tasks x settings x seeds x models, run as many
projects at once on one cluster.

    name: tabular
    tasks: [breast-cancer, diabetes]        # shipped task names or task folders
    # data_dir: ~/mlebench/data             # MLE-bench's data dir: the tasks are then competition ids there
    # tasks: [spaceship-titanic, {id: my-comp, metric: auc-roc, id_column: key}, {id: digits, data_dir: null}]
    settings:                               # named overrides: bus_memory, cross_project_memory (default
                                            # off in a sweep), budget, target, max_steps, max_tokens
      memory-on: {}
      memory-off: {bus_memory: false}
    seeds: [0, 1]                           # exported to every run as AISCI_SEED
    models: [baseline]                      # baseline | openai:<model> | vllm:<path>
    budget: 30m                             # per project, unless a setting says otherwise
    max_concurrent: 4                       # projects running at once
    agents: 4                               # agent actors per model (shared by all its projects)
    policy: {network: false, memory_mb: 4096}   # the operator's run policy (actors.runs.RunPolicy)
    allow_unsandboxed: false                # run models' code without bubblewrap where it cannot run
    llm: {gpus: 0, max_model_len: 8192}     # vllm models' engine: the --llm-* keys, any vLLM engine arg

The projects share one agent pool per model (and memory switch), one LLM engine per
model (``actors.llm.server``) and one run queue for CPUs and GPUs (``cluster.admission``:
round-robin between projects). The sweep
itself is a project on the bus (``sweep-<name>``: the spec and its members), so running
the same command again resumes it as a whole: ended projects are left alone, paused or
interrupted ones resume, the rest start. SIGTERM pauses every running project.

A task is a string (a shipped task's name or a folder; with ``data_dir``, a competition
id in it, as ``aisci run ID --data-dir DIR``) or a ``TaskEntry`` mapping, which can give
its own ``data_dir`` (``null``: a shipped task or folder in a sweep with a data dir)
and what ``aisci run`` takes as flags (``metric``, ``id_column``, ``config``,
``leaderboard``). Every task is found and checked whole before Ray starts.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Annotated, Any, Union

import ray
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_serializer,
)

from actors.llm.capabilities import check_server
from actors.llm.config import ModelSpecError, actor_env, parse_model, with_engine
from actors.outcome import Outcome
from actors.pool import AgentPool
from actors.runs import RunPolicy
from actors.state import State
from benchmarks.mlebench.task import InvalidTask, TaskOptions, open_task
from bus import Bus

from .display import untrusted
from .driver import PreemptionNotice, console, pause_now, result_of
from .engine import check_vllm, place_engine
from .errors import UserError
from .grading import finish_project, grade_of
from .job import ProjectJob, ProjectOutcome
from .lease import DriverLease
from .quick_run import SandboxExecutor
from .run import (
    connect,
    make_job,
    moves_off_drained_node,
    parse_budget,
    prepare,
    read_yaml,
    start_orchestrator,
)
from .tasks import find_task


class Setting(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bus_memory: bool = True
    # Off in a sweep unless a setting turns it on: members (seeds above all) must not
    # learn from one another, or the grid measures the order they ran in.
    cross_project_memory: bool = False
    budget: str | float | None = None
    target: float | None = None
    max_steps: int | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)


class TaskEntry(BaseModel):
    """One task of a sweep, written out (a plain string in ``tasks:`` is ``{id: it}``)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, description="A competition id in the data dir; with no data dir, a shipped "
                    "task's name or a task folder.")
    data_dir: str | None = Field(default=None, description="MLE-bench's data dir holding <id>/prepared/ (~ and "
                                 "relative paths as on the command line); unset: the sweep's; null: none.")
    metric: str | None = Field(default=None, description="As `aisci run --metric`.")
    id_column: str | None = Field(default=None, description="As `aisci run --id-column`.")
    config: str | None = Field(default=None, description="As `aisci run --config`: the competition's config.yaml.")
    leaderboard: str | None = Field(default=None, description="As `aisci run --leaderboard`.")


# A string or a mapping, told apart before validation, so that a mistake in a mapping is
# reported as that (`tasks.0.entry.datadir: Extra inputs are not permitted`), not as "not a string".
_Task = Annotated[Union[Annotated[str, Tag("name")], Annotated[TaskEntry, Tag("entry")]],
                  Discriminator(lambda v: "name" if isinstance(v, str) else "entry")]


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,23}$")
    tasks: list[_Task] = Field(min_length=1, description="Shipped task names, task folders, or (with a "
                                         "data dir) competition ids; a mapping is a TaskEntry.")
    data_dir: str | None = Field(default=None, description="MLE-bench's data dir (`mlebench prepare --data-dir`): "
                                 "the tasks are competition ids there, unless an entry says otherwise.")
    settings: dict[str, Setting] = Field(default_factory=lambda: {"default": Setting()})
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    models: list[str] = Field(default_factory=lambda: ["baseline"], min_length=1)
    budget: str | float = "1h"
    max_concurrent: int = Field(default=4, ge=1)
    agents: int = Field(default=4, ge=1)
    policy: RunPolicy | None = Field(default=None, description="The operator's run policy for every project.")
    allow_unsandboxed: bool = False
    llm: dict[str, Any] = Field(default_factory=dict, description="The vLLM engine's settings for the vllm models "
                                "(actors.llm.config.EngineSettings: gpus, max_model_len, memory_fraction, any "
                                "vLLM engine arg).")

    @field_serializer("tasks")
    def _tasks_as_written(self, tasks: list) -> list:
        # An entry's data_dir unset (the sweep's) and null (none) differ: keep only what was written.
        return [t if isinstance(t, str) else t.model_dump(exclude_unset=True) for t in tasks]

    @classmethod
    def load(cls, path: str | Path) -> SweepSpec:
        """Read and check a sweep file. Raises ``UserError`` with one line saying what is wrong."""
        data: Any = read_yaml(path, "sweep file")
        if not isinstance(data, dict):
            raise UserError(f"sweep file {path}: a YAML mapping of name, tasks, settings, seeds, models, budget, ... "
                            "(benchmarks/sweeps/tabular.yaml is an example)")
        odd = [k for k in (data.get("settings") or {}) if not isinstance(k, str)] \
            if isinstance(data.get("settings"), dict) else []
        if odd:  # YAML reads on/off/yes/no/true/false (and numbers) as values, not names
            raise UserError(f"sweep file {path}: settings: the name {str(odd[0]).lower()} is read by YAML as a "
                            f"{type(odd[0]).__name__}: quote it (e.g. \"on\": {{}})")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            raise UserError(f"sweep file {path}: {'.'.join(map(str, first['loc'])) or 'the file'}: {first['msg']}"
                            + (f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else "")) from None

    @property
    def project(self) -> str:
        return f"sweep-{self.name}"

    def task_folders(self) -> list[tuple[Path, TaskOptions]]:
        """Each task's folder and options, in ``tasks`` order, each opened and checked
        whole (``benchmarks.mlebench.task.Task``).

        Raises:
            UserError: one line naming the task (and, for a competition id, the data
                dir and the folder looked at) and what to fix.
        """
        out = []
        for raw in self.tasks:
            entry = TaskEntry(id=raw) if isinstance(raw, str) else raw
            data_dir = entry.data_dir if "data_dir" in entry.model_fields_set else self.data_dir
            options = TaskOptions(config=entry.config, leaderboard=entry.leaderboard, metric=entry.metric,
                                  id_column=entry.id_column, data_dir=data_dir)
            try:
                task = open_task(entry.id if data_dir else find_task(entry.id), options)
            except InvalidTask as e:
                where = f" in the data dir {data_dir}" if data_dir else ""
                raise UserError(f"sweep {self.name}: task {entry.id!r}{where}: {e}") from None
            out.append((task.root, task.options))  # (options: the config and leaderboard found, no data dir)
        return out

    def jobs(self) -> list[tuple[ProjectJob, dict]]:
        """One job per grid point, with its coordinates (task, setting, seed, model).
        Raises ``UserError`` before anything starts: an unknown task (a competition id
        not in the data dir) or model, a name too long, or a grid point twice (the
        same task, seed or model listed twice)."""
        tasks = self.task_folders()
        twice = [f"{axis} {v!r}" for axis, values in (("task", [str(folder) for folder, _ in tasks]),
                                                      ("seed", self.seeds), ("model", self.models))
                 for v in {x for x in values if values.count(x) > 1}]
        if twice:
            raise UserError(f"sweep {self.name}: {', '.join(twice)} listed twice; list each once")
        out = []
        for folder, options in tasks:
            for setting_name, s in self.settings.items():
                for model in self.models:
                    for seed in self.seeds:
                        parts = [self.name, folder.name, setting_name, f"s{seed}"]
                        if len(self.models) > 1:
                            parts.insert(3, re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[-16:])
                        project = "-".join(parts)
                        if len(project) > 64:
                            raise UserError(f"project name {project!r} is longer than 64 characters: "
                                            "use shorter sweep, task or setting names")
                        try:
                            llm = parse_model(model)
                        except ModelSpecError as e:  # named as the file has it, not as the --model flag
                            raise UserError(f"sweep {self.name}: models: {str(e).replace('--model ', '', 1)}") from None
                        llm = with_engine(llm, self.llm) if llm.backend == "vllm" else llm
                        job = make_job(str(folder), project, llm, parse_budget(s.budget or self.budget),
                                       s.target, s.bus_memory, self.agents, self.policy, self.allow_unsandboxed,
                                       options)
                        job.run_policy = job.run_policy.model_copy(update={"seed": seed})
                        job.cross_project_memory = s.cross_project_memory
                        for key in ("max_steps", "max_tokens"):
                            if getattr(s, key) is not None:
                                setattr(job.orchestrator, key, getattr(s, key))
                        out.append((job, {"task": folder.name, "setting": setting_name, "seed": seed,
                                          "model": model}))
        names = [j.project for j, _ in out]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise UserError(f"sweep {self.name}: two grid points make the same project {clash[0]!r} "
                            "(tasks with the same folder name?); rename one")
        return out


def members(bus: Bus, sweep: str) -> list[dict]:
    """The projects of a sweep and their coordinates, as recorded on the bus. Raises
    ``UserError`` for a sweep never run on this bus (named as the user named it, not as
    the bus stores it)."""
    if f"sweep-{sweep}" not in bus.projects():
        known = sorted(p.removeprefix("sweep-") for p in bus.projects() if p.startswith("sweep-"))
        raise UserError(f"no sweep {sweep!r} under {bus.root}: " + (f"the sweeps there are {', '.join(known)}"
                        if known else "none has run there yet (`aisci sweep FILE` runs one)"))
    view = bus.project(f"sweep-{sweep}").as_role("viewer")
    return yaml.safe_load(view.read("sweep/members.yaml")) or []


# What a sweep may change between two runs of its file: how many projects go at once, and
# grid points added or dropped (a new seed, task, model or setting makes new projects).
# Anything else would run the rest of its projects with other settings than the first.
_FREE = ("max_concurrent", "tasks", "seeds", "models", "settings")


def check_same_sweep(bus: Bus, spec: SweepSpec) -> None:
    """Refuse a sweep file whose name ran before with other settings. Raises
    ``UserError`` naming what differs (the breaker changed the budget and kept the
    name: the paused members resumed with the new budget, the ended ones kept the old)."""
    if spec.project not in bus.projects():
        return
    view = bus.project(spec.project).as_role("viewer")
    try:
        before = SweepSpec.model_validate(yaml.safe_load(view.read("sweep/spec.yaml")))
    except Exception:  # noqa: BLE001  a spec saved by an older version, or damaged: nothing to compare with
        return
    old, new = before.model_dump(mode="json"), spec.model_dump(mode="json")
    changed = [k for k in new if k not in _FREE and old.get(k) != new[k]]
    changed += [f"settings.{k}" for k in new["settings"] if k in old["settings"] and old["settings"][k] != new["settings"][k]]
    if changed:
        said = ", ".join(f"{k} ({_at(old, k)} before, {_at(new, k)} now)" for k in changed[:3])
        raise UserError(f"sweep {spec.name} ran before with other settings: {said}; give the sweep a new name, or "
                        f"put them back (its file as it ran: {view.project.dir / 'sweep' / 'spec.yaml'})")


def pending(bus: Bus, spec: SweepSpec, grid: list[tuple[ProjectJob, dict]]) -> list[ProjectJob]:
    """The jobs of ``spec``'s grid whose projects have not ended, in grid order; none
    left is said (with no cluster joined and no model's server asked). Raises
    ``UserError`` for a sweep file changed under a name that ran (``check_same_sweep``)."""
    check_same_sweep(bus, spec)
    todo = [j for j, _ in grid if not _ended(bus, j.project)]
    if not todo:
        console.print(f"sweep {spec.name}: all {len(grid)} projects have ended; `aisci leaderboard {spec.name}` "
                      "ranks them", markup=False, highlight=False)
    return todo


def _at(spec: dict, key: str) -> str:
    value: Any = spec
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return json.dumps(value, sort_keys=True)[:80]


def run_sweep(bus: Bus, spec: SweepSpec, grace_s: float = 30.0, report_every_s: float = 10.0,
              address: str | None = None) -> list[ProjectOutcome]:
    """Run every grid point of ``spec`` as a project, at most ``max_concurrent`` at once;
    the models' servers are asked what they take and the vLLM engines placed first,
    before anything is written. ``address``: the Ray cluster to join (None: our own)."""
    grid = spec.jobs()
    todo = pending(bus, spec, grid)
    if not todo:
        return []
    servers: dict[str, Any] = {}  # each endpoint asked once what it takes (tools, window), as `aisci run` does
    for job, _ in grid:
        if job.llm.backend == "openai":
            key = job.llm.model_dump_json()
            if key not in servers:
                servers[key], _ = check_server(job.llm)  # before Ray starts or anything is written
                console.print(f"model {job.llm.model} at {job.llm.base_url}: tool calls {servers[key].tool_calling}, "
                              f"context window {servers[key].context_tokens or 'unknown'} tokens", markup=False,
                              highlight=False)
            job.llm = servers[key]
        elif job.llm.backend == "vllm":
            check_vllm(job.llm)
    connect(address)
    engines: dict[str, Any] = {}  # each vllm engine placed and started before anything is written
    for job, _ in grid:
        key = job.llm.model_dump_json()
        if key not in engines:
            engines[key] = place_engine(job.llm, job.orchestrator.budget_s, say=console.print)
        job.llm = engines[key]
    sweep = bus.create_project(spec.project, f"sweep {spec.name}")
    system = sweep.as_role("system", "sweep")
    system.write("sweep/spec.yaml", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False), summary="sweep spec")
    system.write("sweep/members.yaml", yaml.safe_dump([{"project": j.project, **c} for j, c in grid], sort_keys=False),
                 summary=f"{len(grid)} projects")
    console.print(f"[bold]aisci sweep[/bold] {spec.name}: {len(grid)} projects, {len(grid) - len(todo)} already "
                  f"ended, at most {spec.max_concurrent} at once")
    pools: dict[str, AgentPool] = {}  # one per (model, memory switch): agents are built with both
    running: dict[ray.ObjectRef, tuple[ProjectJob, Any]] = {}
    outcomes: list[ProjectOutcome] = []
    notice, asked, last_report = PreemptionNotice(), None, 0.0
    lease = DriverLease(bus)  # a heartbeat per running project (cluster.lease)
    try:
        while todo or running:
            while todo and len(running) < spec.max_concurrent and notice.check() is None:
                job = todo.pop(0)
                key = job.llm.model_dump_json() + str(job.orchestrator.bus_memory)
                if key not in pools:
                    pools[key] = AgentPool(spec.agents, bus.config, job.llm, bus_memory=job.orchestrator.bus_memory,
                                           env=actor_env(job.llm), executor=SandboxExecutor(bus.config))  # run tool
                pool = pools[key]
                prepare(bus, job)
                lease.hold(job.project)
                actor = start_orchestrator(bus, job, pool)
                running[actor.run.remote()] = (job, actor)
                console.print(f"  started {job.project}")
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5) if running else ([], [])
            for ref in ready:
                job, actor = running.pop(ref)
                outcome = result_of(bus, job, ref)
                ray.kill(actor)
                if moves_off_drained_node(bus, job.project, outcome, notice):
                    todo.insert(0, job)
                    continue
                outcomes.append(_finish(bus, job, outcome))
                lease.release(job.project)
            why = notice.check()
            if why and asked is None:
                for job, _ in running.values():
                    bus.project(job.project).as_role("system", "sweep").record("pause_requested", why)
                console.print(f"[yellow]pausing[/yellow] the sweep: {why}; work in flight has {grace_s:.0f} s")
                asked = time.monotonic()
            if asked is not None and time.monotonic() - asked > grace_s:
                outcomes += [_finish(bus, job, pause_now(bus, job, actor, why))
                             for job, actor in running.values()]
                running.clear()
            if why and not running:  # paused: members not started stay so (the same command starts them)
                for job in todo:
                    console.print(f"  waiting {job.project}: not started (the sweep is paused)", markup=False,
                                  highlight=False)
                outcomes += [ProjectOutcome(project=job.project, kind="paused", reason=f"not started: {why}")
                             for job in todo]  # the sweep's exit code says paused, not ended (README)
                todo.clear()
            if time.monotonic() - last_report > report_every_s:
                console.print(f"  {len(outcomes)} ended or paused, {len(running)} running, {len(todo)} waiting")
                last_report = time.monotonic()
    finally:
        notice.close()
        lease.close()  # releases what is still held: paused at the end of the grace, or left by a fault
    paused, failed = sum(o.paused for o in outcomes), sum(o.failed for o in outcomes)
    console.print(f"[bold]sweep {spec.name}[/bold]: {len(outcomes) - paused - failed} projects ended this time, "
                  f"{paused} paused, {failed} failed; `aisci leaderboard {spec.name}` ranks them" + (
                      "; `aisci sweep` the same file again resumes the paused ones" if paused else "") + (
                      "; fix what failed (`aisci status --sweep`), then the same command retries it" if failed else ""))
    return outcomes


def _ended(bus: Bus, project: str) -> bool:
    return project in bus.projects() and grade_of(bus, project) is not None and \
        State.from_events(bus.project(project).events()).stopped is not None


def _finish(bus: Bus, job: ProjectJob, outcome: Outcome) -> ProjectOutcome:
    out = ProjectOutcome(project=job.project, **outcome.model_dump())
    out.kind = "paused" if out.kind == "moved" else out.kind
    if out.kind == "ended":
        out.grade = finish_project(bus, job.project, job.task, job.task_options)
    console.print(f"  {out.kind:7} {job.project}: {untrusted(out.reason)}" + (
        "" if not out.grade else f" -> score {out.grade.score}, {out.grade.standing}" if out.grade.score is not None
        else f" -> not graded: {untrusted(out.grade.reason)}"))  # a Python None was shown (the breaker)
    return out
