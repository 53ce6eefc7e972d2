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
import functools
import os
import signal
import threading
import time

import ray
from rich.console import Console

from actors.llm.config import LLMConfig
from actors.orchestrator import OrchestratorConfig
from actors.runs import RunPolicy
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

from .grading import finish_project, grade_of
from .job import ProjectJob, load_job, save_job
from .sandbox import default_sandbox, probe
from .scheduler import run_batch
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


def progress_line(bus: Bus, job: ProjectJob, t0: float) -> str:
    state = State.from_events(bus.project(job.project).events(), job.orchestrator)
    best = f"{state.best_run.cv_score:.4f}" if state.best_run else "-"
    scored = len(state.scored_runs)
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
    state = State.from_events(proj.events(), job.orchestrator)
    if state.steps and not state.stopped or state.pause_requested or state.paused or state.failed:
        # Ends the pause (or the crash, or the failure): its time does not count against the budget.
        why = state.pause_requested or state.failed or "an interruption"
        proj.as_role("system", "resume").record("resumed", f"resumed after: {why}")
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
        bus.config.model_dump(mode="json"), job.orchestrator.model_dump(), pool, job.llm.model_dump(),
        functools.partial(run_batch, bus.config, job.project), job.run_policy.model_dump(), job.hidden)


def _watch(bus: Bus, job: ProjectJob, actor, ref, t0: float, notice: PreemptionNotice, grace_s: float,
           quiet: bool) -> dict:
    """Wait for the orchestrator, showing progress; on a preemption notice ask it to
    pause and give the work in flight ``grace_s``, then stop it."""
    last, asked = "", None
    while True:
        ready, _ = ray.wait([ref], timeout=0.5)
        line = progress_line(bus, job, t0)
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
    state = State.from_events(bus.project(project).events(), load_job(bus, project).orchestrator)
    bus.project(project).as_role("system", "driver").record(
        "paused", f"{why}; grace period over; in flight (re-dispatched on resume): "
                  f"{', '.join(sorted(state.in_flight)) or 'nothing'}", metrics=state.metrics())
    return outcome_of(f"paused: {why}", state)


def outcome_of(stop_reason: str, state: State | None = None) -> dict:
    """An outcome like the one ``OrchestratorActor.run`` returns, for the ends the driver
    decides itself (a pause after the grace period, a dead orchestrator)."""
    state = state or State(config=None)
    best = state.best_run
    return {"stop_reason": stop_reason, "steps": state.steps, "tokens": state.tokens,
            "best_run": best.model_dump() if best else None,
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
    if job.run_policy.sandbox == "none" and not quiet:
        why = probe().reason or "the operator's choice"
        console.print(f"[yellow]warning[/yellow]: experiments run UNSANDBOXED ({why}); only code the operator "
                      f"trusts should run so (aisci's own templates, with no model)")
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
    grade = grade_of(bus, job.project) if ended_before else None  # resumed after its end: not graded again
    if grade is None:
        grade = finish_project(bus, job.project, job.task)
    if not quiet:
        console.print(f"[bold]{outcome['stop_reason']}[/bold] after {outcome['steps']} steps, {time.time() - t0:.1f} s")
        console.print(f"grade: score {grade['score']} ({'valid' if grade['valid'] else grade['reason']}), "
                      f"medal [bold]{grade['medal']}[/bold], above median {grade['above_median']}; "
                      f"report: {proj.dir / 'report' / 'report.md'}")
    return {"project": job.project, "paused": False, "grade": grade, "wall_s": time.time() - t0, **outcome}


def make_job(task_dir: str, project: str | None = None, llm: LLMConfig | None = None, budget_s: float = 3600.0,
             target: float | None = None, bus_memory: bool = True, agents: int = 2,
             run_policy: RunPolicy | None = None, allow_unsandboxed: bool = False) -> ProjectJob:
    """A job for ``task_dir``. The run policy is the operator's (``run_policy``); its
    sandbox, unless given, is bubblewrap, or none where bubblewrap cannot run and
    either the operator allows it or no model writes the code (``default_sandbox``)."""
    task = Task(task_dir)
    llm = llm or LLMConfig()
    project = project or f"{task.id}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    config = OrchestratorConfig(project=project, task_kind=task.spec.kind, is_lower_better=task.is_lower_better,
                                target=target, budget_s=budget_s, bus_memory=bus_memory)
    if run_policy is None:
        run_policy = RunPolicy(sandbox=default_sandbox(llm.backend == "baseline", allow_unsandboxed))
    return ProjectJob(task=str(task.root), orchestrator=config, llm=llm, agents=agents, run_policy=run_policy,
                      hidden=(str(task.private_dir),))


def run_task(bus: Bus, task_dir: str, project: str | None = None, llm: LLMConfig | None = None,
             budget_s: float = 3600.0, target: float | None = None, bus_memory: bool = True,
             agents: int = 2, grace_s: float = 30.0, run_policy: RunPolicy | None = None,
             allow_unsandboxed: bool = False) -> dict:
    job = make_job(task_dir, project, llm, budget_s, target, bus_memory, agents, run_policy, allow_unsandboxed)
    return run_job(bus, job, grace_s=grace_s)


def resume(bus: Bus, project: str, grace_s: float = 30.0) -> dict:
    """``aisci resume PROJECT``: the job saved on the bus, from where the bus says it stopped."""
    return run_job(bus, load_job(bus, project), grace_s=grace_s)
