"""``aisci paper PAPER_DIR``: a PaperBench paper reproduced by the same orchestrator,
agent pool and bus as ``aisci run``, then reproduced and graded as PaperBench does.

1. The paper goes onto the bus as the task (``task/``: paper.md or paper.pdf,
   addendum.md, blacklist.txt, config.yaml, assets/), never rubric.json nor
   judge.addendum.md (PaperBench's agents do not see them) unless the operator asks for
   them (``show_rubric``, recorded in the report).
2. The orchestrator (``track="paper"``) has the agents write ``submission/``: reproduce.sh,
   the code, a README. The operator's run policy carries the paper's blacklist
   (``RunPolicy.blocked_sources``): the ``run`` tool and experiment runs refuse commands
   naming a blacklisted source.
3. When the project ends: the agents' recorded model calls are read for blacklisted sources
   (a hit is recorded: PaperBench disqualifies), the submission is refused if a file names an
   absolute path of this workspace, else reproduced in the sandbox (``cluster.paper_reproduce``),
   its log and outcome put on the bus (``report/reproduce.log``, ``report/reproduction.json``,
   a ``reproduced`` event), and graded when a judge is configured (``cluster.paper_grade``):
   ``report/paperbench.json`` and a ``paper_graded`` event whose hash names the grade.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import ray

from actors.llm.config import LLMConfig, actor_env
from actors.orchestrator import OrchestratorConfig, failure_line
from actors.pool import AgentPool
from actors.runs import RunPolicy
from actors.state import State
from benchmarks.paperbench import InvalidPaper, Paper, shipped_papers
from bus import Bus, Project
from bus.paths import check_project_name

from .driver import console
from .errors import UserError
from .job import ProjectJob, save_job
from .lease import DriverLease
from .paper_end import PaperOutcome, check_end_placement, end_as_task, finish_paper
from .paper_settings import SETTINGS_FILE, PaperSettings
from .quick_run import SandboxExecutor
from .run import (
    check_not_running,
    connect,
    drive,
    say_not_done,
    start_or_resume,
)
from .sandbox import default_sandbox

__all__ = ["import_paper", "make_paper_job", "open_paper", "paper_files", "prepare_paper", "run_paper"]

def open_paper(name_or_folder: str) -> Paper:
    """A shipped paper by its name, or a paper folder. Raises ``UserError`` (one line)."""
    shipped = shipped_papers()
    folder = shipped.get(name_or_folder) or Path(name_or_folder).expanduser()
    if not Path(folder).is_dir():
        raise UserError(f"no paper {name_or_folder!r}: give a PaperBench paper folder (config.yaml, paper.md, "
                        f"addendum.md, rubric.json, blacklist.txt) or a shipped paper's name "
                        f"({', '.join(sorted(shipped)) or 'none'})")
    try:
        return Paper(folder)
    except InvalidPaper as e:
        raise UserError(str(e)) from None


def paper_files(paper: Paper, show_rubric: bool = False) -> dict[str, Path]:
    """bus path (``task/...``) -> source: what the agents are given."""
    files = {f"task/{p.relative_to(paper.root).as_posix()}": p for p in paper.agent_files()}
    files["task/config.yaml"] = paper.root / "config.yaml"
    if show_rubric:
        files["task/rubric.json"] = paper.root / "rubric.json"
        if (paper.root / "judge.addendum.md").is_file():
            files["task/judge.addendum.md"] = paper.root / "judge.addendum.md"
    return files


def import_paper(bus: Bus, paper: Paper, project: str, show_rubric: bool = False) -> Project:
    """Create ``project`` with the paper's files under task/ (idempotent)."""
    proj = bus.create_project(project, f"paper {paper.id}")
    system = proj.as_role("system", "import")
    have = set(system.list("task"))
    for path, src in paper_files(paper, show_rubric).items():
        if path not in have and not src.is_symlink():
            system.write_from(path, src, summary=f"paper input: {path[len('task/'):]}")
    return proj


def make_paper_job(paper: Paper, project: str | None = None, llm: LLMConfig | None = None, budget_s: float = 86400.0,
                   bus_memory: bool = True, agents: int = 2, allow_unsandboxed: bool = False,
                   run_policy: RunPolicy | None = None) -> ProjectJob:
    """A project job for ``paper``; the run policy (the operator's, or the default sandbox)
    gets the paper's blacklist. Raises ``InvalidPath`` for a bad project name."""
    llm = llm or LLMConfig()
    project = project or f"{paper.id}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    check_project_name(project)
    policy = run_policy or RunPolicy(sandbox=default_sandbox(llm.backend == "baseline", allow_unsandboxed))
    policy = policy.model_copy(update={"blocked_sources": tuple(paper.blacklist)})
    config = OrchestratorConfig(project=project, budget_s=budget_s, bus_memory=bus_memory, track="paper")
    return ProjectJob(task=str(paper.root), orchestrator=config, llm=llm, agents=agents, run_policy=policy,
                      hidden=(str(paper.root),))  # the rubric's folder: no run may see it


def prepare_paper(bus: Bus, job: ProjectJob, paper: Paper, settings: PaperSettings) -> State:
    """``prepare`` for a paper: the paper on the bus (idempotent), the job and the
    operator's paper settings saved, a resumed project made ready (``start_or_resume``).
    Raises ``ProjectBusy`` where another driver runs it."""
    connect()
    check_not_running(bus, job.project)
    resumed = job.project in bus.projects()
    import_paper(bus, paper, job.project, settings.show_rubric)
    save_job(bus, job)
    bus.operator.write(job.project, SETTINGS_FILE, settings.model_dump_json(indent=1).encode())
    return start_or_resume(bus, job, resumed, f"paper {paper.id}: the budget runs from here"
                           + ("; the agents are shown the rubric" if settings.show_rubric else ""))


def run_paper(bus: Bus, job: ProjectJob, settings: PaperSettings, pool: AgentPool | None = None,
              grace_s: float = 30.0, quiet: bool = False) -> PaperOutcome:
    """Run the project to its end (or a pause), then reproduce and grade it (``finish_paper``:
    here, or as a Ray task where the reproduction asks for GPUs). Raises ``UserError``
    where no node has the GPUs asked for, before anything is written."""
    paper = Paper(settings.paper)
    t0 = time.time()
    connect()
    check_end_placement(settings)  # before anything is written
    prepare_paper(bus, job, paper, settings)
    say = (lambda *_, **__: None) if quiet else console.print
    say(f"[bold]aisci paper[/bold] {paper.id} -> project [bold]{job.project}[/bold] on {bus.root} "
        f"(model: {job.llm.backend}{'' if job.orchestrator.bus_memory else ', bus memory OFF'})")
    with DriverLease(bus) as lease:
        lease.hold(job.project)
        pool = pool or AgentPool(job.agents, bus.config, job.llm, bus_memory=job.orchestrator.bus_memory,
                                 env=actor_env(job.llm), executor=SandboxExecutor(bus.config))
        outcome = drive(bus, job, pool, t0, grace_s, quiet)
        out = PaperOutcome(project=job.project, wall_s=time.time() - t0, **outcome.model_dump())
        if out.kind == "moved":
            out.kind = "paused"
        if out.paused or out.failed:
            say(say_not_done(out))
            return out
        ref = None
        try:
            if settings.reproduce_gpus:  # on a node with the GPUs, which the driver's may not have
                say(f"the end (reproduction, grade) runs as a Ray task with {settings.gpus_said}...")
                ref = end_as_task(bus, job, settings, out)
                out, lines = ray.get(ref)
                for line in lines:
                    say(line)
            else:
                finish_paper(bus, job, settings, out, say)
        except ray.exceptions.RayError as e:  # the task raised, or its worker or node died
            out.kind, out.reason = "failed", f"its end (reproduction, grade) failed: {failure_line(e)}"
            bus.project(job.project).as_role("system", "paper").record("failed", out.reason)
            say(say_not_done(out))
        except (KeyboardInterrupt, SystemExit) as e:  # SIGTERM (a spot instance's notice) or Ctrl-C in the end
            if ref is not None:
                ray.cancel(ref, force=True)
            why = "Ctrl-C" if isinstance(e, KeyboardInterrupt) else "SIGTERM (preemption notice)"
            out.kind, out.reason = "paused", f"{why} during its end (reproduction, grade): cut, nothing graded"
            say(say_not_done(out))  # no `paper_ended` event: the resume does the end again
    out.wall_s = time.time() - t0
    return out


