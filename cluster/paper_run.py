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
import json
import time
from pathlib import Path

import pyarrow.compute as pc
from pydantic import Field

from actors.blacklist import hits
from actors.llm.config import LLMConfig, actor_env
from actors.orchestrator import OrchestratorConfig
from actors.pool import AgentPool
from actors.runs import RunPolicy
from actors.state import State
from benchmarks.paperbench import Paper, PaperGrade, Reproduction
from bus import Bus, Project
from bus.paths import check_project_name

from . import scratch
from .driver import console
from .engine import place_engine
from .errors import UserError
from .job import ProjectJob, ProjectOutcome, save_job
from .lease import DriverLease
from .paper_grade import JudgedGrade, grade_json, grade_submission
from .paper_replay import keep_outputs
from .paper_reproduce import (
    export_submission,
    reproduce,
    submission_files,
    submission_history,
    workspace_paths,
)
from .paper_settings import NOT_GRADED, SETTINGS_FILE, PaperSettings
from .quick_run import SandboxExecutor
from .report import write_report
from .run import (
    check_not_running,
    connect,
    drive,
    say_not_done,
    start_or_resume,
)
from .sandbox import default_sandbox

__all__ = ["PaperOutcome", "finish_paper", "import_paper", "make_paper_job", "paper_files",
           "run_paper"]

JUDGE_ENGINE_WAIT_S = 1800.0  # a vLLM judge's start-up: 2-6 min seen on a busy 2-core machine

class PaperOutcome(ProjectOutcome):
    reproduction: Reproduction | None = None
    refused: list[str] = Field(default_factory=list, description="Why the submission was refused (absolute paths).")
    blacklist_hits: list[str] = Field(default_factory=list)
    paper_grade: PaperGrade | None = None


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


def _prepare(bus: Bus, job: ProjectJob, paper: Paper, settings: PaperSettings) -> State:
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
    """Run the project to its end (or a pause), then reproduce and grade it."""
    paper = Paper(settings.paper)
    t0 = time.time()
    _prepare(bus, job, paper, settings)
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
        finish_paper(bus, job, settings, out, say)
    out.wall_s = time.time() - t0
    return out


def monitor_blacklist(proj: Project, sources: list[str]) -> list[str]:
    """PaperBench's monitor: ``path: source`` for each agent transcript (the recorded model
    calls, logs/llm/<instance>/) naming a blacklisted source; the judge's are not read."""
    if not sources:
        return []
    system = proj.as_role("system", "monitor")
    found = []
    for path in system.list("logs/llm"):
        if path.split("/")[2].startswith("judge-"):
            continue
        for source in hits(system.read_bytes(path).decode("utf-8", "replace"), sources):
            found.append(f"{path}: {source}")
    return found


def finish_paper(bus: Bus, job: ProjectJob, settings: PaperSettings, out: PaperOutcome, say=console.print) -> None:
    """The end of a paper project: monitor, submission check, reproduction, grade, report."""
    paper = Paper(settings.paper)
    proj = bus.project(job.project)
    system = proj.as_role("system", "paper")
    out.blacklist_hits = monitor_blacklist(proj, paper.blacklist)
    if out.blacklist_hits:
        system.write("report/blacklist.json", json.dumps(out.blacklist_hits, indent=1),
                     summary=f"{len(out.blacklist_hits)} blacklisted sources named in the agents' model calls")
        system.record("blacklist_hit", f"the agents' model calls name blacklisted sources (PaperBench disqualifies): "
                      f"{'; '.join(out.blacklist_hits)[:300]}", status="disqualified")
        say(f"[red]blacklist[/red]: {len(out.blacklist_hits)} hits (report/blacklist.json): PaperBench disqualifies")
    files = submission_files(system)
    out.refused = workspace_paths(bus, proj, files)
    scratch_dir = str(bus.root / "scratch" / job.project / "reproduce")
    folder: Path | None = None
    if out.refused:
        system.write("report/reproduction.json", json.dumps({"refused": out.refused}, indent=1),
                     summary="the submission was refused: it names absolute paths of the workspace")
        system.record("submission_refused", f"the submission names absolute paths of this workspace (a fresh copy "
                      f"elsewhere has none): {'; '.join(out.refused)[:300]}", status="refused")
        say(f"[red]refused[/red]: the submission names absolute paths of the workspace: {'; '.join(out.refused)}")
    elif not settings.code_dev:
        try:
            repro, folder, commits = reproduce(files, scratch_dir, settings.reproduce_timeout_s, job.run_policy,
                                               job.hidden, history=submission_history(proj, system))
        except Exception:
            scratch.wipe(scratch_dir)
            raise
        out.reproduction = repro
        log = (folder / "reproduce.log").read_bytes()
        system.write("report/reproduce.log", log, summary=f"output of reproduce.sh ({repro.log_bytes} bytes)")
        kept = keep_outputs(system, folder, set(files))  # what the judge reads of them: a replay rebuilds it
        record = {**repro.model_dump(), "commit": commits[-1] if commits else None, "commits": len(commits), **kept}
        system.write("report/reproduction.json", json.dumps(record, indent=1),
                     summary="how the reproduction went")
        system.record("reproduced", f"reproduce.sh {_said(repro)} in {repro.repro_execution_time_s:.1f} s",
                      path="report/reproduce.log", status="ok" if repro.exit_code == 0 else "failed",
                      metrics={"duration_s": repro.repro_execution_time_s, "timed_out": float(repro.timed_out),
                               "exit_code": float(repro.exit_code if repro.exit_code is not None else -1)})
        say(f"reproduction: reproduce.sh {_said(repro)} in {repro.repro_execution_time_s:.1f} s; "
            f"log: {proj.dir / 'report' / 'reproduce.log'}")
    try:
        if out.refused:
            pass
        elif settings.judge is None:
            say(NOT_GRADED)
        else:
            if folder is None:  # Code-Dev: the submission as written, not run
                folder = Path(scratch.make(scratch_dir, "reproduce", None, None))
                export_submission(files, folder)
            judged = _judge(bus, job.project, paper, folder, settings, say)
            if judged is not None:
                grade = out.paper_grade = judged.grade
                data = grade_json(judged, settings.judge)
                digest = proj.put_object(data.encode())
                system.write("report/paperbench.json", data, summary=f"PaperBench score {grade.score:.3f}")
                system.record("paper_graded", f"PaperBench{' Code-Dev' if grade.code_only else ''} score "
                              f"{grade.score:.3f} ({grade.num_leaf_nodes} leaves, {grade.num_invalid_leaf_nodes} "
                              f"invalid; judge {settings.judge.label})", hash=digest,
                              metrics={"score": grade.score, "invalid_leaves": float(grade.num_invalid_leaf_nodes),
                                       "judge_wall_s": judged.wall_s, "leaves_per_min": judged.leaves_per_min})
                say(f"PaperBench score [bold]{grade.score:.3f}[/bold] ({grade.num_leaf_nodes} leaves judged in "
                    f"{judged.wall_s:.0f} s, {judged.leaves_per_min:.1f} a minute; judge {settings.judge.label}); "
                    f"tree: {proj.dir / 'report' / 'paperbench.json'}")
    finally:
        scratch.wipe(scratch_dir)
    write_report(proj, None)
    say(f"report: {proj.dir / 'report' / 'report.md'}")


def _judge(bus: Bus, project: str, paper: Paper, folder: Path, settings: PaperSettings, say) -> JudgedGrade | None:
    """The grade; a vLLM judge's engine is placed and started first (``cluster.engine``:
    it may take minutes on a CPU); one that cannot be is said, and the paper is not graded."""
    judge = settings.judge
    if judge.kind == "vllm":
        try:
            judge = judge.model_copy(update={"llm": place_engine(judge.llm, JUDGE_ENGINE_WAIT_S, say=say)})
        except UserError as e:
            say(f"not graded: the judge's vLLM engine: {e}")
            return None
    return grade_submission(bus, project, paper, folder, judge, settings.code_dev, say=say)


def _said(repro: Reproduction) -> str:
    if not repro.repro_script_exists:
        return "is missing"
    if repro.timed_out:
        return "timed out"
    return f"exited {repro.exit_code}" if repro.exit_code is not None else "did not run (the sandbox failed)"


def paper_grade_of(bus: Bus, project: str) -> dict | None:
    """The project's recorded PaperBench grade (by the hash on its last ``paper_graded``
    event), or None."""
    proj = bus.project(project)
    events = proj.events()
    rows = events.filter(pc.equal(events.column("kind"), "paper_graded"))
    if rows.num_rows == 0:
        return None
    digest = rows.column("hash")[-1].as_py()
    return json.loads(proj.read_object(digest)) if digest else None


def ended_line(bus: Bus, project: str) -> str | None:
    """What `aisci paper` and `aisci resume` say of a paper project that has ended (its
    score, or not graded, and its report); None while it has not."""
    if not State.from_events(bus.project(project).events()).stopped:
        return None
    grade = paper_grade_of(bus, project)
    said = f"PaperBench score {grade['score']:.3f}" if grade else "not graded"
    return f"{project} ended already ({said}); report: `aisci report {project}`"
