"""``aisci run TASK`` / ``aisci resume PROJECT``: the main job. Starts or joins Ray,
puts the task's public files on the bus, starts the project's Orchestrator actor,
shows progress read from the bus, and ends with the grade and the report.

Preemption: SIGTERM (what a spot instance, ``ray job stop`` or Kubernetes sends) or a
drain of the driver's node asks the orchestrator to pause: it dispatches nothing new,
the work in flight has ``grace_s`` to finish, and the pause is recorded on the bus;
``aisci resume PROJECT`` (or the same ``aisci run``) continues from there. A drain of
only the orchestrator's node moves the orchestrator to another node.

Ray: ``RAY_ADDRESS`` set (as under ``ray job submit``) joins that cluster; unset starts
an embedded local one. Token authentication stays as the cluster has it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import threading
import time

import ray
from rich.console import Console

from actors.llm.config import LLMConfig
from actors.orchestrator import OrchestratorConfig
from actors.orchestrator_actor import (
    NAMESPACE,
    OWN_NODE_DRAIN,
    OrchestratorActor,
    draining_nodes,
    orchestrator_name,
)
from actors.pool import AgentPool
from actors.state import State
from benchmarks.grading.task import Task
from bus import Bus, BusError
from bus.repair import repair

from .job import ProjectJob, load_job, save_job
from .report import write_report
from .tasks import import_task

console = Console(soft_wrap=True)  # job logs: one line per message, never re-wrapped


def connect() -> None:
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(namespace=NAMESPACE, log_to_driver=False)
    else:
        ray.init(namespace=NAMESPACE, include_dashboard=False, log_to_driver=False)


def parse_budget(text: str) -> float:
    """'90s', '30m', '2h', '1d' or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, IndexError):
        raise ValueError(f"budget {text!r}: use a number of seconds or e.g. 90s, 30m, 2h, 1d") from None


def progress_line(bus: Bus, project: str, t0: float) -> str:
    state = State.from_events(bus.project(project).events())
    best = f"{state.best_run['cv_score']:.4f}" if state.best_run else "-"
    scored = sum(1 for r in state.runs if r["cv_score"] is not None)
    running = ", ".join(sorted(state.in_flight)[:4]) or "-"
    return (f"[{time.time() - t0:6.1f} s] step {state.steps} | running: {running} | runs {scored} | "
            f"best cv {best} | tokens {state.tokens}")


class ProjectBusy(BusError):
    """The project's orchestrator is alive on this cluster: starting a second is refused."""


class PreemptionNotice:
    """SIGTERM, or a drain of the driver's node, while the job runs (``reason`` says which)."""

    def __init__(self):
        self.reason: str | None = None
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame) -> None:
        self.reason = "SIGTERM (preemption notice)"

    def check(self) -> str | None:
        if self.reason is None and ray.is_initialized():
            deadline = draining_nodes().get(ray.get_runtime_context().get_node_id())
            if deadline is not None:
                self.reason = "node drain: the driver's node is being drained"
        return self.reason

    def close(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def prepare(bus: Bus, job: ProjectJob) -> State:
    """Put the task on the bus, save the job, and make a resumed project ready: its
    index repaired (whatever died left it half-written) and its pause lifted. Returns
    the project's state as this start found it."""
    connect()
    try:
        ray.get_actor(orchestrator_name(job.project), namespace=NAMESPACE)
        raise ProjectBusy(f"project {job.project!r} is already running on this cluster "
                          f"(actor {orchestrator_name(job.project)}); `aisci status {job.project}` shows it")
    except ValueError:
        pass  # no live orchestrator: nothing of this project runs (the job's actors die with its driver)
    resumed = job.project in bus.projects()
    proj = import_task(bus, Task(job.task), job.project)
    save_job(bus, job)
    if resumed:
        report = repair(bus, job.project)
        if not report.clean:
            console.print(f"[yellow]repaired[/yellow] the index of {job.project}: {report}")
    state = State.from_events(proj.events())
    if state.pause_requested or state.paused:
        proj.as_role("system", "resume").record("resumed", f"resumed after: {state.pause_requested}")
    return state


def start_orchestrator(bus: Bus, job: ProjectJob, pool: AgentPool):
    name = orchestrator_name(job.project)
    for _ in range(100):  # a killed predecessor's name is released within moments
        try:
            ray.get_actor(name, namespace=NAMESPACE)
            time.sleep(0.1)
        except ValueError:
            break
    return OrchestratorActor.options(name=name, namespace=NAMESPACE).remote(
        bus.config.model_dump(mode="json"), job.orchestrator.model_dump(), pool, job.run_defaults, job.llm.model_dump())


def _watch(bus: Bus, job: ProjectJob, actor, ref, t0: float, notice: PreemptionNotice, grace_s: float,
           quiet: bool) -> dict:
    """Wait for the orchestrator, showing progress; on a preemption notice ask it to
    pause and give the work in flight ``grace_s``, then stop it."""
    last, asked = "", None
    while True:
        ready, _ = ray.wait([ref], timeout=0.5)
        line = progress_line(bus, job.project, t0)
        if not quiet and (line.split("]", 1)[1] != last or ready):  # print when something changed
            console.print(line)
            last = line.split("]", 1)[1]
        if ready:
            try:
                return ray.get(ref)
            except ray.exceptions.ActorDiedError as e:
                if not e.preempted:
                    raise
                # Its node was preempted and Ray gave up on it: start it again elsewhere
                # (run_job's loop), which resumes from the bus.
                return outcome_of(f"paused: {OWN_NODE_DRAIN} was preempted")
        why = notice.check()
        if why and asked is None:
            bus.project(job.project).as_role("system", "driver").record("pause_requested", why)
            console.print(f"[yellow]pausing[/yellow] {job.project}: {why}; work in flight has {grace_s:.0f} s")
            asked = time.monotonic()
        if asked is not None and time.monotonic() - asked > grace_s:
            return pause_now(bus, job.project, actor, why)


def pause_now(bus: Bus, project: str, actor, why: str) -> dict:
    """The grace period is over: stop the orchestrator (and the work it waits for) and
    record the pause; what was in flight is re-dispatched on resume."""
    ray.kill(actor)
    state = State.from_events(bus.project(project).events())
    bus.project(project).as_role("system", "driver").record(
        "paused", f"{why}; grace period over; in flight (re-dispatched on resume): "
                  f"{', '.join(sorted(state.in_flight)) or 'nothing'}", metrics=state.metrics())
    return outcome_of(f"paused: {why}", state)


def outcome_of(stop_reason: str, state: State | None = None) -> dict:
    """An outcome like the one ``OrchestratorActor.run`` returns, for the ends the driver
    decides itself (a pause after the grace period, a dead orchestrator)."""
    state = state or State(config=None)
    return {"stop_reason": stop_reason, "steps": state.steps, "tokens": state.tokens, "best_run": state.best_run,
            "elapsed_s": state.elapsed_s, "tick_overhead_ms": []}


def moves_off_drained_node(bus: Bus, project: str, outcome: dict, notice: PreemptionNotice) -> bool:
    """True when only the orchestrator's node is going away (the driver's is not): the
    pause is lifted (``resumed``) and the caller starts a new orchestrator, which Ray
    places on another node (nothing new goes to a draining one)."""
    if not outcome["stop_reason"].startswith(f"paused: {OWN_NODE_DRAIN}") or notice.check():
        return False
    bus.project(project).as_role("system", "driver").record("resumed", "the orchestrator moves off its drained node")
    return True


def run_job(bus: Bus, job: ProjectJob, pool: AgentPool | None = None, grace_s: float = 30.0,
            quiet: bool = False) -> dict:
    """Run (or resume) one project to its end or to a pause; returns the outcome, with
    the grade when it ended."""
    t0 = time.time()
    ended_before = prepare(bus, job).stopped is not None
    proj = bus.project(job.project)
    if shutil.which("bwrap") is None and not quiet:
        console.print("[yellow]warning[/yellow]: bubblewrap is not installed, so experiments run unsandboxed "
                      "(`apt-get install bubblewrap`)")
    if not quiet:
        console.print(f"[bold]aisci[/bold] {Task(job.task).id} -> project [bold]{job.project}[/bold] on {bus.root} "
                      f"(model: {job.llm.backend}{'' if job.orchestrator.bus_memory else ', bus memory OFF'})")
    pool = pool or AgentPool(job.agents, bus.config, job.llm, bus_memory=job.orchestrator.bus_memory)
    notice = PreemptionNotice()
    try:
        while True:
            actor = start_orchestrator(bus, job, pool)
            outcome = _watch(bus, job, actor, actor.run.remote(), t0, notice, grace_s, quiet)
            ray.kill(actor)
            if not moves_off_drained_node(bus, job.project, outcome, notice):
                break
    finally:
        notice.close()
    if outcome["stop_reason"].startswith("paused"):
        console.print(f"[yellow]{outcome['stop_reason']}[/yellow] after {outcome['steps']} steps; continue with "
                      f"`aisci resume {job.project}`")
        return {"project": job.project, "paused": True, "grade": None, "wall_s": time.time() - t0, **outcome}
    graded = proj.dir / "report" / "grade.json"
    if ended_before and graded.is_file():  # resumed after its end: nothing ran, nothing to grade again
        grade = json.loads(graded.read_text())
    else:
        grade = finish_project(bus, job)
    if not quiet:
        console.print(f"[bold]{outcome['stop_reason']}[/bold] after {outcome['steps']} steps, {time.time() - t0:.1f} s")
        console.print(f"grade: score {grade['score']} ({'valid' if grade['valid'] else grade['reason']}), "
                      f"medal [bold]{grade['medal']}[/bold], above median {grade['above_median']}; "
                      f"report: {proj.dir / 'report' / 'report.md'}")
    return {"project": job.project, "paused": False, "grade": grade, "wall_s": time.time() - t0, **outcome}


def finish_project(bus: Bus, job: ProjectJob) -> dict:
    """Grade the submission (private answers, outside every agent's reach), record the
    grade as a file and a ``graded`` event (what leaderboards query), write the report."""
    proj = bus.project(job.project)
    grade = Task(job.task).grade(proj.dir / "submission" / "submission.csv").model_dump()
    proj.as_role("writer", "grader").write("report/grade.json", json.dumps(grade, indent=1),
                                           summary=f"{grade['medal']} medal, score {grade['score']}")
    proj.as_role("system", "grader").record("graded", f"{grade['medal']} medal, score {grade['score']}", metrics={
        "score": float(grade["score"]) if grade["score"] is not None else float("nan"),
        "valid": float(grade["valid"]), "medal_rank": float(MEDALS.index(grade["medal"])),
        "lower_is_better": float(grade["lower_is_better"])})
    write_report(proj, grade)
    return grade


MEDALS = ("none", "bronze", "silver", "gold")  # a medal's rank is its index (the graded event's medal_rank)


def make_job(task_dir: str, project: str | None = None, llm: LLMConfig | None = None, budget_s: float = 3600.0,
             target: float | None = None, bus_memory: bool = True, agents: int = 2) -> ProjectJob:
    task = Task(task_dir)
    project = project or f"{task.id}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    config = OrchestratorConfig(project=project, task_kind=task.spec.kind, target=target, budget_s=budget_s,
                                bus_memory=bus_memory)
    return ProjectJob(task=str(task.root), orchestrator=config, llm=llm or LLMConfig(), agents=agents,
                      run_defaults={"hide": [str(task.private_dir)], "memory_mb": 4096, "cpus": 1})


def run_task(bus: Bus, task_dir: str, project: str | None = None, llm: LLMConfig | None = None,
             budget_s: float = 3600.0, target: float | None = None, bus_memory: bool = True,
             agents: int = 2, grace_s: float = 30.0) -> dict:
    return run_job(bus, make_job(task_dir, project, llm, budget_s, target, bus_memory, agents), grace_s=grace_s)


def resume(bus: Bus, project: str, grace_s: float = 30.0) -> dict:
    """``aisci resume PROJECT``: the job saved on the bus, from where the bus says it stopped."""
    return run_job(bus, load_job(bus, project), grace_s=grace_s)
