"""A project's job: everything needed to (re)start it, kept in the operator's area.

The job is written when a project starts, so that ``aisci resume PROJECT`` (after a
preemption, a crash, or on another cluster sharing the bus) needs nothing but the
project's name: the task folder, the orchestrator's settings, the model, the size of
the agent pool, the operator's run policy and the host paths no run may see are read
back from it. It lives in ``<root>/operator/<project>/job.json`` (``bus.operator``),
not in the workspace: the run policy and the paths it names are safeguards, and no
role may read or change them (docs/threat-model.md).
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, Field

from actors.llm.config import LLMConfig
from actors.memory import TaskProfile, build_prior, record_profile, write_prior
from actors.orchestrator import OrchestratorConfig
from actors.outcome import Outcome
from actors.runs import RunPolicy
from benchmarks.mlebench.report import CompetitionReport
from benchmarks.mlebench.task import InvalidTask, Task, TaskOptions
from bus import Bus, NotFound

JOB_FILE = "job.json"


class ProjectJob(BaseModel):
    task: str = Field(description="The task folder (MLE-bench's layout: config.yaml, description.md, prepared/).")
    task_options: TaskOptions = Field(default_factory=TaskOptions, description="What the user gave where the "
                                      "folder does not say it (--config, --leaderboard, --metric, --id-column).")
    orchestrator: OrchestratorConfig
    llm: LLMConfig = Field(default_factory=LLMConfig)
    agents: int = Field(default=2, ge=1, le=64, description="Agent actors in the pool (when the job makes its own).")
    run_policy: RunPolicy = Field(default_factory=RunPolicy, description="The operator's rules for every run.")
    hidden: tuple[str, ...] = Field(default=(), description="Host paths no run may see (the task's answers).")
    cross_project_memory: bool = Field(default=True, description="At its first start the project gets a prior "
                                       "(plan/prior.json, plan/prior.md): what similar earlier projects on this bus "
                                       "found (actors/memory.py). Off: nothing is written, for an honest comparison.")

    @property
    def project(self) -> str:
        return self.orchestrator.project


class ProjectOutcome(Outcome):
    """How ``aisci run``/``resume`` of one project ended, with its grade when it ended."""

    project: str
    grade: CompetitionReport | None = Field(default=None, description="The grade, when it ended.")
    wall_s: float = Field(default=0.0, description="Wall time of this start, seconds.")

    @property
    def paused(self) -> bool:
        """Paused (a preemption, ``aisci pause``): ``aisci resume`` continues it."""
        return self.kind == "paused"

    @property
    def failed(self) -> bool:
        """Its orchestrator raised or died: a resume retries, after the cause is fixed."""
        return self.kind == "failed"


def save_job(bus: Bus, job: ProjectJob) -> None:
    data = job.model_dump_json(indent=1).encode()
    if not bus.operator.exists(job.project, JOB_FILE) or bus.operator.read(job.project, JOB_FILE) != data:
        bus.operator.write(job.project, JOB_FILE, data)


def load_job(bus: Bus, project: str) -> ProjectJob:
    if project not in bus.projects():
        raise NotFound(f"no project {project!r} on {bus.root}; `aisci status` lists them")
    if not bus.operator.exists(project, JOB_FILE):
        raise NotFound(f"project {project!r} has no saved job: its first start was stopped before the job was "
                       f"saved (or it was not made by `aisci run`); start it again with "
                       f"`aisci run TASK --project {project}` (nothing it did is lost)")
    return ProjectJob.model_validate_json(bus.operator.read(project, JOB_FILE))


def _train_shape(task: Task) -> tuple[int, int]:
    """(rows, columns) of the task's training table; (0, 0) where it cannot be read.
    Rows are counted as lines, streamed: a CSV field with a line break in it counts
    twice, which a shape distance on a log scale does not notice."""
    try:
        path = task.public_dir / task.data.train_csv
        with open(path, "rb") as f:
            header = f.readline()
            rows = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        return rows, len(header.split(b","))
    except (InvalidTask, OSError):
        return 0, 0


def remember(bus: Bus, job: ProjectJob, task: Task) -> None:
    """At a project's first start: record its task's profile (always: later projects
    learn from this one) and, with ``cross_project_memory`` on, write its prior."""
    system = bus.project(job.project).as_role("system", "memory")
    profile = TaskProfile.from_task_json(task.summary(), *_train_shape(task))
    if job.cross_project_memory:
        try:
            write_prior(system, build_prior(bus, job.project, profile))
        except Exception as e:  # noqa: BLE001  the prior only orders the first runs: a project starts without it
            # (another project's index changing under the scan, a damaged store, ...)
            logging.getLogger(__name__).warning("no prior from earlier projects: %s: %s", type(e).__name__, e)
    record_profile(system, profile)
