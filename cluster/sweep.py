"""``aisci sweep sweep.yaml``: a grid of tasks x settings x seeds x models, run as many
projects at once on one cluster.

    name: tabular
    tasks: [breast-cancer, diabetes]        # shipped task names or task folders
    settings:                               # named overrides: bus_memory, budget, target, max_steps, max_tokens
      memory-on: {}
      memory-off: {bus_memory: false}
    seeds: [0, 1]                           # exported to every run as AISCI_SEED
    models: [baseline]                      # baseline | openai:<model> | vllm:<path>
    budget: 30m                             # per project, unless a setting says otherwise
    max_concurrent: 4                       # projects running at once
    agents: 4                               # agent actors per model (shared by all its projects)

The projects share one agent pool per model (and memory switch), one LLM engine per
model (``actors.llm.server``) and the GPUs (``cluster.scheduler.GpuShare``). The sweep
itself is a project on the bus (``sweep-<name>``: the spec and its members), so running
the same command again resumes it as a whole: ended projects are left alone, paused or
interrupted ones resume, the rest start. SIGTERM pauses every running project.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import ray
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from actors.llm.config import parse_model
from actors.pool import AgentPool
from actors.state import State
from benchmarks.grading.task import shipped_tasks
from bus import Bus

from .grading import finish_project, grade_of
from .job import ProjectJob
from .run import (
    PreemptionNotice,
    connect,
    console,
    make_job,
    moves_off_drained_node,
    outcome_of,
    parse_budget,
    pause_now,
    prepare,
    start_orchestrator,
)


class Setting(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bus_memory: bool = True
    budget: str | None = None
    target: float | None = None
    max_steps: int | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,23}$")
    tasks: list[str] = Field(min_length=1)
    settings: dict[str, Setting] = Field(default_factory=lambda: {"default": Setting()})
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    models: list[str] = Field(default_factory=lambda: ["baseline"], min_length=1)
    budget: str = "1h"
    max_concurrent: int = Field(default=4, ge=1)
    agents: int = Field(default=4, ge=1)

    @classmethod
    def load(cls, path: str | Path) -> SweepSpec:
        try:
            data: Any = yaml.safe_load(Path(path).read_text())
            return cls.model_validate(data)
        except FileNotFoundError:
            raise ValueError(f"no sweep file {path}") from None
        except (yaml.YAMLError, ValidationError) as e:
            raise ValueError(f"sweep file {path}: {e}") from None

    @property
    def project(self) -> str:
        return f"sweep-{self.name}"

    def jobs(self) -> list[tuple[ProjectJob, dict]]:
        """One job per grid point, with its coordinates (task, setting, seed, model)."""
        known = shipped_tasks()
        out = []
        for task in self.tasks:
            folder = str(known.get(task, task))
            if not (Path(folder) / "task.yaml").is_file():
                raise ValueError(f"task {task!r}: not a shipped task ({', '.join(sorted(known))}) nor a task folder")
            for setting_name, s in self.settings.items():
                for model in self.models:
                    for seed in self.seeds:
                        parts = [self.name, Path(folder).name, setting_name, f"s{seed}"]
                        if len(self.models) > 1:
                            parts.insert(3, re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[-16:])
                        project = "-".join(parts)
                        if len(project) > 64:
                            raise ValueError(f"project name {project!r} is longer than 64 characters: "
                                             "use shorter sweep, task or setting names")
                        job = make_job(folder, project, parse_model(model), parse_budget(s.budget or self.budget),
                                       s.target, s.bus_memory, self.agents)
                        job.run_policy = job.run_policy.model_copy(update={"seed": seed})
                        for key in ("max_steps", "max_tokens"):
                            if getattr(s, key) is not None:
                                setattr(job.orchestrator, key, getattr(s, key))
                        out.append((job, {"task": Path(folder).name, "setting": setting_name, "seed": seed,
                                          "model": model}))
        return out


def members(bus: Bus, sweep: str) -> list[dict]:
    """The projects of a sweep and their coordinates, as recorded on the bus."""
    view = bus.project(f"sweep-{sweep}").as_role("viewer")
    return yaml.safe_load(view.read("sweep/members.yaml")) or []


def run_sweep(bus: Bus, spec: SweepSpec, grace_s: float = 30.0, report_every_s: float = 10.0) -> list[dict]:
    connect()
    grid = spec.jobs()
    sweep = bus.create_project(spec.project, f"sweep {spec.name}")
    system = sweep.as_role("system", "sweep")
    system.write("sweep/spec.yaml", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False), summary="sweep spec")
    system.write("sweep/members.yaml", yaml.safe_dump([{"project": j.project, **c} for j, c in grid], sort_keys=False),
                 summary=f"{len(grid)} projects")
    todo = [j for j, _ in grid if not _ended(bus, j.project)]
    console.print(f"[bold]aisci sweep[/bold] {spec.name}: {len(grid)} projects, {len(grid) - len(todo)} already "
                  f"ended, at most {spec.max_concurrent} at once")
    pools: dict[str, AgentPool] = {}  # one per (model, memory switch): agents are built with both
    running: dict[ray.ObjectRef, tuple[ProjectJob, Any]] = {}
    outcomes: list[dict] = []
    notice, asked, last_report = PreemptionNotice(), None, 0.0
    try:
        while todo or running:
            while todo and len(running) < spec.max_concurrent and notice.check() is None:
                job = todo.pop(0)
                key = job.llm.model_dump_json() + str(job.orchestrator.bus_memory)
                pool = pools.setdefault(key, AgentPool(spec.agents, bus.config, job.llm,
                                                       bus_memory=job.orchestrator.bus_memory))
                prepare(bus, job)
                actor = start_orchestrator(bus, job, pool)
                running[actor.run.remote()] = (job, actor)
                console.print(f"  started {job.project}")
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5) if running else ([], [])
            for ref in ready:
                job, actor = running.pop(ref)
                outcome = _outcome(ref, job)
                ray.kill(actor)
                if moves_off_drained_node(bus, job.project, outcome, notice):
                    todo.insert(0, job)
                    continue
                outcomes.append(_finish(bus, job, outcome))
            why = notice.check()
            if why and asked is None:
                for job, _ in running.values():
                    bus.project(job.project).as_role("system", "sweep").record("pause_requested", why)
                console.print(f"[yellow]pausing[/yellow] the sweep: {why}; work in flight has {grace_s:.0f} s")
                asked = time.monotonic()
            if asked is not None and time.monotonic() - asked > grace_s:
                outcomes += [_finish(bus, job, pause_now(bus, job.project, actor, why))
                             for job, actor in running.values()]
                running.clear()
            if time.monotonic() - last_report > report_every_s:
                console.print(f"  {len(outcomes)} ended or paused, {len(running)} running, {len(todo)} waiting")
                last_report = time.monotonic()
    finally:
        notice.close()
    paused = sum(o["paused"] for o in outcomes)
    console.print(f"[bold]sweep {spec.name}[/bold]: {len(outcomes) - paused} projects ended this time, {paused} "
                  f"paused; `aisci leaderboard {spec.name}` ranks them" + (
                      "; `aisci sweep` the same file again resumes the paused ones" if paused else ""))
    return outcomes


def _ended(bus: Bus, project: str) -> bool:
    return project in bus.projects() and grade_of(bus, project) is not None and \
        State.from_events(bus.project(project).events()).stopped is not None


def _outcome(ref: ray.ObjectRef, job: ProjectJob) -> dict:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as e:  # its restarts used up: the sweep goes on without it
        console.print(f"[red]{job.project} failed[/red]: {str(e).splitlines()[0][:300]}")
        return outcome_of(f"failed: {type(e).__name__}")


def _finish(bus: Bus, job: ProjectJob, outcome: dict) -> dict:
    paused = outcome["stop_reason"].startswith(("paused", "failed"))
    grade = None if paused else finish_project(bus, job.project, job.task)
    console.print(f"  {'paused ' if paused else 'ended  '} {job.project}: {outcome['stop_reason']}" +
                  (f" -> {grade['medal']} ({grade['score']})" if grade else ""))
    return {"project": job.project, "paused": paused, "grade": grade, **outcome}
