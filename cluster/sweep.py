"""``aisci sweep sweep.yaml``: a grid of tasks and papers x settings x seeds x models
(the file: ``cluster.sweep_spec``), run as many projects at once on one cluster.

The projects share one agent pool per model (and memory switch), one LLM engine per
model (``actors.llm.server``) and one run queue for CPUs and GPUs (``cluster.admission``:
round-robin between projects). A paper's project ends as ``aisci paper`` ends one (its
reproduction and grade, ``cluster.paper_end``), as a Ray task: the sweep goes on while
it reproduces, and the task asks for the GPUs the reproduction is given. The sweep
itself is a project on the bus (``sweep-<name>``: the spec and its members), so running
the same command again resumes it as a whole: ended projects are left alone, paused or
interrupted ones resume (a paper stopped before its end is ended), the rest start.
SIGTERM pauses every running project; a paper's end in flight is cut at the grace
period and done again by the next run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import ray
import yaml

from actors.llm.config import actor_env
from actors.orchestrator import failure_line
from actors.outcome import Outcome
from actors.pool import AgentPool
from actors.state import State
from benchmarks.paperbench import Paper
from bus import Bus

from .display import untrusted
from .driver import PreemptionNotice, console, pause_now, result_of
from .engine import check_vllm, place_engine
from .errors import UserError
from .grading import finish_project, grade_of
from .job import ProjectJob, ProjectOutcome
from .lease import DriverLease
from .paper_end import (
    JUDGE_ENGINE_WAIT_S,
    PaperOutcome,
    check_end_placement,
    end_as_task,
    paper_ended,
)
from .paper_run import prepare_paper
from .paper_settings import PaperSettings
from .quick_run import SandboxExecutor
from .run import connect, moves_off_drained_node, prepare, start_orchestrator
from .sweep_spec import PaperOptions, Setting, SweepSpec, TaskEntry

__all__ = ["PaperOptions", "Setting", "SweepSpec", "TaskEntry", "check_same_sweep", "members", "pending",
           "run_sweep"]


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
_FREE = ("max_concurrent", "tasks", "papers", "seeds", "models", "settings")


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
    todo = [j for j, _ in grid if not _ended(bus, j)]
    if not todo:
        console.print(f"sweep {spec.name}: all {len(grid)} projects have ended; `aisci leaderboard {spec.name}` "
                      "ranks them", markup=False, highlight=False)
    return todo


def _at(spec: dict, key: str) -> str:
    value: Any = spec
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return json.dumps(value, sort_keys=True)[:80]


@dataclass
class _Member:
    """A project of the sweep in flight: its orchestrator running, or (``actor`` None) a
    paper's end running as a Ray task."""

    job: ProjectJob
    actor: Any | None
    paper: PaperSettings | None = None


def run_sweep(bus: Bus, spec: SweepSpec, grace_s: float = 30.0, report_every_s: float = 10.0,
              address: str | None = None) -> list[ProjectOutcome]:
    """Run every grid point of ``spec`` as a project, at most ``max_concurrent`` at once;
    the models' servers are asked what they take and the vLLM engines placed first,
    before anything is written. ``address``: the Ray cluster to join (None: our own)."""
    grid = spec.jobs()
    todo = pending(bus, spec, grid)
    if not todo:
        return []
    papers = {job.project: spec.paper_settings(job.task) for job, c in grid if c["track"] == "paper"}
    judge = next(iter(papers.values())).judge if papers else None
    servers: dict[str, Any] = {}  # each endpoint asked once what it takes (tools, window), as `aisci run` does
    for job, _ in grid:
        if job.llm.backend == "openai":
            key = job.llm.model_dump_json()
            if key not in servers:
                # Here, not at the top: openai takes 0.4 s to import, needed only with --model openai:...
                from actors.llm.capabilities import check_server

                servers[key], _ = check_server(job.llm)  # before Ray starts or anything is written
                console.print(f"model {job.llm.model} at {job.llm.base_url}: tool calls {servers[key].tool_calling}, "
                              f"context window {servers[key].context_tokens or 'unknown'} tokens", markup=False,
                              highlight=False)
            job.llm = servers[key]
        elif job.llm.backend == "vllm":
            check_vllm(job.llm)
    if judge is not None and judge.kind == "vllm":
        check_vllm(judge.llm)
    connect(address)
    if papers:
        check_end_placement(next(iter(papers.values())))
    engines: dict[str, Any] = {}  # each vllm engine placed and started before anything is written
    for job, _ in grid:
        key = job.llm.model_dump_json()
        if key not in engines:
            engines[key] = place_engine(job.llm, job.orchestrator.budget_s, say=console.print)
        job.llm = engines[key]
    if judge is not None and judge.kind == "vllm":  # the papers' judge: one engine, placed once, for every end
        placed = judge.model_copy(update={"llm": place_engine(judge.llm, JUDGE_ENGINE_WAIT_S, say=console.print)})
        papers = {p: s.model_copy(update={"judge": placed}) for p, s in papers.items()}
    sweep = bus.create_project(spec.project, f"sweep {spec.name}")
    system = sweep.as_role("system", "sweep")
    system.write("sweep/spec.yaml", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False), summary="sweep spec")
    system.write("sweep/members.yaml", yaml.safe_dump([{"project": j.project, **c} for j, c in grid], sort_keys=False),
                 summary=f"{len(grid)} projects")
    console.print(f"[bold]aisci sweep[/bold] {spec.name}: {len(grid)} projects, {len(grid) - len(todo)} already "
                  f"ended, at most {spec.max_concurrent} at once")
    pools: dict[str, AgentPool] = {}  # one per (model, memory switch): agents are built with both
    running: dict[ray.ObjectRef, _Member] = {}
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
                paper = papers.get(job.project)
                if paper is None:
                    prepare(bus, job)
                else:
                    prepare_paper(bus, job, Paper(paper.paper), paper)
                lease.hold(job.project)
                actor = start_orchestrator(bus, job, pools[key])
                running[actor.run.remote()] = _Member(job, actor, paper)
                console.print(f"  started {job.project}")
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5) if running else ([], [])
            for ref in ready:
                member = running.pop(ref)
                job = member.job
                if member.actor is None:  # a paper's end came back
                    outcomes.append(_paper_ended(bus, job, ref))
                    lease.release(job.project)
                    continue
                outcome = result_of(bus, job, ref)
                ray.kill(member.actor)
                if moves_off_drained_node(bus, job.project, outcome, notice):
                    todo.insert(0, job)
                    continue
                if member.paper is not None and outcome.kind == "ended":  # its reproduction and grade: a Ray task
                    out = PaperOutcome(project=job.project, **outcome.model_dump())
                    running[end_as_task(bus, job, member.paper, out)] = _Member(job, None, member.paper)
                    console.print(f"  ending  {job.project}: its reproduction and grade", markup=False)
                    continue
                outcomes.append(_finish(bus, job, outcome))
                lease.release(job.project)
            why = notice.check()
            if why and asked is None:
                for member in running.values():
                    if member.actor is not None:  # a paper's end has no orchestrator left to ask
                        bus.project(member.job.project).as_role("system", "sweep").record("pause_requested", why)
                console.print(f"[yellow]pausing[/yellow] the sweep: {why}; work in flight has {grace_s:.0f} s")
                asked = time.monotonic()
            if asked is not None and time.monotonic() - asked > grace_s:
                outcomes += [_finish(bus, m.job, pause_now(bus, m.job, m.actor, why) if m.actor is not None
                                     else _cut_end(ref, why)) for ref, m in running.items()]
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


def _ended(bus: Bus, job: ProjectJob) -> bool:
    if job.project not in bus.projects():
        return False
    if job.orchestrator.track == "paper":  # stopped, and its end (reproduction, grade) done
        return paper_ended(bus, job.project)
    return grade_of(bus, job.project) is not None and \
        State.from_events(bus.project(job.project).events()).stopped is not None


def _cut_end(ref: ray.ObjectRef, why: str) -> Outcome:
    """A paper's end still running when the grace period is over: cancelled; the project
    stays stopped without ``paper_ended``, and the next run of the sweep ends it."""
    ray.cancel(ref, force=True)
    return Outcome(kind="paused", reason=f"{why}: its end (reproduction, grade) was cut; the same command does it "
                                         "again")


def _paper_ended(bus: Bus, job: ProjectJob, ref: ray.ObjectRef) -> ProjectOutcome:
    """A paper's end, come back: its outcome said in one line. One that failed (the
    sandbox, the judge) is recorded as ``failed``: the same command tries it again."""
    try:
        out, _lines = ray.get(ref)
    except ray.exceptions.RayError as e:  # it raised, its worker or node died, it was cancelled
        why = f"its end (reproduction, grade) failed: {failure_line(e)}"
        bus.project(job.project).as_role("system", "sweep").record("failed", why)
        out = PaperOutcome(project=job.project, kind="failed", reason=why)
    said = ("refused (absolute paths of the workspace)" if out.refused else
            f"PaperBench score {out.paper_grade.score:.3f}" if out.paper_grade else "not graded")
    repro = out.reproduction
    ran = f", reproduce.sh {'timed out' if repro.timed_out else f'exited {repro.exit_code}'} in " \
          f"{repro.repro_execution_time_s:.0f} s" if repro else ""
    console.print(f"  {out.kind:7} {job.project}: " + (untrusted(out.reason) if out.kind != "ended" else
                                                        f"{said}{ran}"), markup=False, highlight=False)
    return out


def _finish(bus: Bus, job: ProjectJob, outcome: Outcome) -> ProjectOutcome:
    out = ProjectOutcome(project=job.project, **outcome.model_dump())
    out.kind = "paused" if out.kind == "moved" else out.kind
    if out.kind == "ended":
        out.grade = finish_project(bus, job.project, job.task, job.task_options)
    console.print(f"  {out.kind:7} {job.project}: {untrusted(out.reason)}" + (
        "" if not out.grade else f" -> score {out.grade.score}, {out.grade.standing}" if out.grade.score is not None
        else f" -> not graded: {untrusted(out.grade.reason)}"))  # a Python None was shown (the breaker)
    return out
