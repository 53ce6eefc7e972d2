"""The end of a paper project, after its orchestrator stopped: PaperBench's monitor, the
submission check, the reproduction, the grade and the report (``finish_paper``), then a
``paper_ended`` event. Until that event a stopped project has not ended: a driver killed
in the middle (the reproduction takes minutes to hours) leaves it to the next ``aisci
paper``, ``aisci resume`` or sweep, which does the end again from the bus.

In the driver's process (``aisci paper`` with no GPU asked), or as a Ray task
(``end_as_task``): a sweep's ends, so that its loop goes on while a paper reproduces, and
any end that asks for GPUs (``PaperSettings.reproduce_gpus``: Ray places it on a node that
has them, and reproduce.sh sees them). Its lines are then returned, not printed
(``connect`` keeps the workers' output from the driver).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import ray
from pydantic import Field

from actors.blacklist import hits
from actors.state import State
from benchmarks.paperbench import Paper, PaperGrade, Reproduction
from bus import Bus, BusConfig, Project

from . import scratch
from .driver import console
from .engine import place_engine
from .errors import UserError
from .job import ProjectJob, ProjectOutcome
from .paper_grade import JudgedGrade, grade_json, grade_submission
from .paper_replay import keep_outputs
from .paper_reproduce import (
    export_submission,
    reproduce,
    submission_files,
    submission_history,
    workspace_paths,
)
from .paper_settings import NOT_GRADED, PaperSettings
from .recorded import recorded_object
from .report import write_report

__all__ = ["PaperOutcome", "check_end_placement", "end_as_task", "ended_line", "finish_paper",
           "monitor_blacklist", "paper_ended", "paper_grade_of"]

JUDGE_ENGINE_WAIT_S = 1800.0  # a vLLM judge's start-up: 2-6 min seen on a busy 2-core machine


class PaperOutcome(ProjectOutcome):
    reproduction: Reproduction | None = None
    refused: list[str] = Field(default_factory=list, description="Why the submission was refused (absolute paths).")
    blacklist_hits: list[str] = Field(default_factory=list)
    paper_grade: PaperGrade | None = None


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
                                               job.hidden, history=submission_history(proj, system),
                                               gpus=settings.reproduce_gpus)
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
    grade = out.paper_grade
    system.record("paper_ended", "the end is done: " + ("refused" if out.refused else "not graded" if grade is None
                  else f"PaperBench score {grade.score:.3f}"), path="report/report.md")
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
    return recorded_object(bus.project(project), "paper_graded")


def ended_line(bus: Bus, project: str) -> str | None:
    """What `aisci paper` and `aisci resume` say of a paper project that has ended (its
    score, or not graded, and its report); None while it has not."""
    if not paper_ended(bus, project):
        return None
    grade = paper_grade_of(bus, project)
    said = f"PaperBench score {grade['score']:.3f}" if grade else "not graded"
    return f"{project} ended already ({said}); report: `aisci report {project}`"


def paper_ended(bus: Bus, project: str) -> bool:
    """True once the project's end is done (a ``paper_ended`` event after it stopped); a
    project stopped without it is finished by its next driver."""
    events = bus.project(project).events()
    return State.from_events(events).stopped is not None and \
        pc.any(pc.equal(events.column("kind"), "paper_ended")).as_py() is True


def check_end_placement(settings: PaperSettings) -> None:
    """Refuse at once an end asking for more GPUs than any node of the cluster has.
    Raises ``UserError``."""
    if not settings.reproduce_gpus:
        return
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if any(n.get("GPU", 0.0) >= settings.reproduce_gpus and n.get("CPU", 0.0) >= 1 for n in nodes):
        return
    most = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    raise UserError(f"the reproduction asks for {settings.gpus_said} and no node of this cluster has "
                    f"that (the most on one node: {most:g}): give fewer (--reproduce-gpus, or reproduce_gpus in a "
                    "sweep's paper:), or join a cluster that has them (--address)")


@ray.remote(max_retries=0)
def _end(bus_config: dict, job: dict, settings: dict, out: dict) -> tuple[PaperOutcome, list[str]]:
    lines: list[str] = []
    outcome = PaperOutcome.model_validate(out)
    finish_paper(Bus(config=BusConfig.model_validate(bus_config)), ProjectJob.model_validate(job),
                 PaperSettings.model_validate(settings), outcome, say=lambda line, **_: lines.append(str(line)))
    return outcome, lines


def end_as_task(bus: Bus, job: ProjectJob, settings: PaperSettings, out: PaperOutcome) -> ray.ObjectRef:
    """``finish_paper`` as a Ray task asking for one CPU and ``settings.reproduce_gpus``
    GPUs; its result is (the outcome, the lines it would have said). Where it fails or is
    cancelled, the project stays stopped without ``paper_ended``: the next driver ends it."""
    return _end.options(num_cpus=1, num_gpus=settings.reproduce_gpus, name=f"paper-end:{job.project}").remote(
        bus.config.model_dump(mode="json"), job.model_dump(mode="json"), settings.model_dump(mode="json"),
        out.model_dump(mode="json"))
