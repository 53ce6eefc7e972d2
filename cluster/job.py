"""A project's job: everything needed to (re)start it, saved on the bus.

``plan/job.json`` is written when a project starts, so that ``aisci resume PROJECT``
(after a preemption, a crash, or on another cluster sharing the bus) needs nothing
but the project's name: the task folder, the orchestrator's settings, the model, the
size of the agent pool and the experiments' defaults are read back from it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from actors.llm.config import LLMConfig
from actors.orchestrator import OrchestratorConfig
from bus import Bus, NotFound

JOB_PATH = "plan/job.json"


class ProjectJob(BaseModel):
    task: str = Field(description="The task folder (description.md, task.yaml, prepared/).")
    orchestrator: OrchestratorConfig
    llm: LLMConfig = Field(default_factory=LLMConfig)
    agents: int = Field(default=2, ge=1, description="Agent actors in the pool (when the job makes its own).")
    run_defaults: dict = Field(default_factory=dict, description="Experiment spec defaults (hide, memory_mb, cpus).")

    @property
    def project(self) -> str:
        return self.orchestrator.project


def save_job(bus: Bus, job: ProjectJob) -> None:
    bus.project(job.project).as_role("system", "job").write_if_changed(
        JOB_PATH, job.model_dump_json(indent=1), summary=f"job: task {job.task}, model {job.llm.backend}")


def load_job(bus: Bus, project: str) -> ProjectJob:
    if project not in bus.projects():
        raise NotFound(f"no project {project!r} on {bus.root}; `aisci status` lists them")
    view = bus.project(project).as_role("system", "job")
    if not view.exists(JOB_PATH):
        raise NotFound(f"project {project!r} has no {JOB_PATH} (it was not started by `aisci run`); "
                       f"start it with `aisci run TASK --project {project}`")
    return ProjectJob.model_validate_json(view.read(JOB_PATH))
