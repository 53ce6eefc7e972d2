"""``aisci run TASK`` / ``aisci resume PROJECT``: the main job. Starts or joins Ray,
puts the task's public files on the bus, starts the project's Orchestrator actor,
shows progress read from the bus, and ends with the grade and the report.

Preemption (SIGTERM, Ctrl-C, a node drain) pauses the project (``cluster.driver``);
``aisci resume PROJECT`` (or the same ``aisci run``) continues from there.

Ray: ``--address`` or ``RAY_ADDRESS`` (as under ``ray job submit``) joins that cluster;
otherwise a new local one starts (``connect``). Token authentication stays as the
cluster has it.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

import ray
import yaml

from actors.llm.config import LLMConfig, actor_env
from actors.orchestrator import OrchestratorConfig
from actors.orchestrator_actor import NAMESPACE, OrchestratorActor, orchestrator_name
from actors.outcome import Outcome
from actors.pool import AgentPool
from actors.runs import RunPolicy
from actors.state import State
from benchmarks.mlebench.task import InvalidTask, Task, TaskOptions, open_task
from bus import Bus, BusError
from bus.paths import check_project_name
from bus.repair import repair

from .connect import connect
from .display import untrusted
from .driver import PreemptionNotice, console, watch
from .engine import place_engine
from .errors import UserError
from .grading import finish_project, grade_of
from .job import ProjectJob, ProjectOutcome, load_job, remember, save_job
from .lease import DriverLease, last_heartbeat
from .quick_run import SandboxExecutor
from .sandbox import default_sandbox, probe
from .scheduler import run_batch
from .tasks import import_task


def read_yaml(path: str | Path, flag: str) -> Any:
    """The YAML document in ``path``; ``flag`` names the file in the one-line error
    (unreadable, not UTF-8, not YAML: with the line and column of the fault). Raises
    ``UserError``."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{flag} {path}: not UTF-8 text (byte {e.start}): save it as UTF-8 YAML") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{flag} {path}: not valid YAML at {where}{problem}") from None


def load_yaml_mapping(path: str, flag: str, what: str) -> dict:
    """A YAML file holding one mapping (``flag`` and ``what`` name it in the error).
    Raises ``UserError``."""
    data = read_yaml(path, flag) or {}
    if not isinstance(data, dict):
        raise UserError(f"{flag} {path}: a YAML mapping of {what}")
    return data


def load_policy(path: str) -> RunPolicy:
    """The operator's run policy from a YAML file of ``RunPolicy`` fields."""
    return RunPolicy.model_validate(load_yaml_mapping(path, "--policy", "RunPolicy fields (sandbox, network, "
                                                      "memory_mb, ...)"))


MAX_BUDGET_S = 365 * 86400.0  # a year: past it a budget is a typo (99999d), and deadlines far out overflow timers


def parse_budget(text: str | float, flag: str = "budget") -> float:
    """'90s', '30m', '2h', '1d' or plain seconds -> seconds (> 0, at most a year);
    ``flag`` names the option in the error. Raises ``UserError``."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    raw = str(text).strip().lower()
    try:
        seconds = float(raw[:-1]) * units[raw[-1]] if raw and raw[-1] in units else float(raw)
    except (ValueError, IndexError):
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise UserError(f"{flag} {text!r}: use a positive number of seconds or e.g. 90s, 30m, 2h, 1d")
    if seconds > MAX_BUDGET_S:
        raise UserError(f"{flag} {text!r}: give at most 365d (a paused project's budget does not run: "
                        "`aisci pause` and `aisci resume` for work spread over longer)")
    return seconds


class ProjectBusy(BusError):
    """The project's orchestrator is alive on this cluster: starting a second is refused."""


def check_not_running(bus: Bus, project: str) -> None:
    """Refuse a second driver for a project that runs: on this cluster (its orchestrator
    actor is alive) or anywhere (another driver's lease is held: each `aisci` command
    starts a cluster of its own, so the actor alone did not see it; the breaker's
    `aisci resume` of a running project ran runs twice). Raises ``ProjectBusy``."""
    try:
        ray.get_actor(orchestrator_name(project), namespace=NAMESPACE)
        raise ProjectBusy(f"project {project!r} is already running on this cluster "
                          f"(actor {orchestrator_name(project)}); `aisci status {project}` shows it")
    except ValueError:
        pass  # no live orchestrator here: nothing of this project runs on this cluster
    beat = last_heartbeat(bus, project)
    if beat is not None and not beat.gone() and (beat.host, beat.pid) != (socket.gethostname(), os.getpid()):
        raise ProjectBusy(f"project {project!r} is already running: its driver (pid {beat.pid} on {beat.host}) "
                          f"beat {max(time.time() - beat.time, 0):.0f} s ago; `aisci status {project}` shows it, "
                          f"`aisci pause {project}` pauses it")


def prepare(bus: Bus, job: ProjectJob) -> State:
    """Put the task on the bus, save the job, and make a resumed project ready: its
    index repaired (whatever died left it half-written) and its pause lifted. Returns
    the project's state as this start found it."""
    connect()
    check_not_running(bus, job.project)
    resumed = job.project in bus.projects()
    task = Task(job.task, job.task_options)
    import_task(bus, task, job.project)
    save_job(bus, job)
    return start_or_resume(bus, job, resumed, "the job started: the wall-clock budget runs from here",
                           first=lambda: remember(bus, job, task),  # its task's profile, and its prior
                           metrics={"is_lower_better": float(job.orchestrator.is_lower_better)})


def start_or_resume(bus: Bus, job: ProjectJob, resumed: bool, started: str, first=lambda: None,
                    metrics: dict | None = None) -> State:
    """The start of a project's driver, after its inputs and job are on the bus (``aisci
    run``'s and ``aisci paper``'s alike): a resumed project's index repaired (whatever died
    left it half-written); then a ``started`` event the first time (after ``first()``:
    the budget runs from here), else a ``resumed`` one that lifts a pause, a crash or a
    failure (their time does not count against the budget). Returns the state as this
    start found it."""
    proj = bus.project(job.project)
    if resumed:
        report = repair(bus, job.project)
        if not report.clean:
            console.print(f"[yellow]repaired[/yellow] the index of {untrusted(report, 1000)}")
    state = State.from_events(proj.events(), job.orchestrator)
    if state.started is None:  # the budget runs from the job's start, not from its first decision
        first()
        proj.as_role("system", "driver").record("started", started, metrics=metrics)
    elif not state.stopped or state.pause_requested or state.paused or state.failed:
        why = state.pause_requested or state.failed or "an interruption"
        proj.as_role("system", "resume").record("resumed", f"resumed after: {why}")
    return state


def record_model(proj, llm: LLMConfig) -> None:
    """How this start talks to the model, as an ``llm_settings`` event: the tool-calling
    mode (``status``) and the context window (``metrics``), for ``aisci bus log``."""
    if llm.backend == "baseline":
        return
    window = llm.window()
    mode = "text" if llm.tool_calling == "text" else "native"  # auto, unprobed (not the CLI's openai): native
    proj.as_role("system", "driver").record(
        "llm_settings", f"{llm.backend}:{llm.model or '-'}: tool calls {mode}, context window "
        f"{window.tokens if window else 'unknown'} tokens", status=mode, model=f"{llm.backend}/{llm.model}",
        metrics={"context_tokens": float(window.tokens)} if window else None)


def start_orchestrator(bus: Bus, job: ProjectJob, pool: AgentPool, queue: bool = True):
    """The project's orchestrator actor. ``queue=False``: its runs skip the cluster's run
    queue (the old way, for benchmarks/perf/sweep_bench.py only)."""
    name = orchestrator_name(job.project)
    for _ in range(100):  # a killed predecessor's name is released within moments
        try:
            ray.get_actor(name, namespace=NAMESPACE)
            time.sleep(0.1)
        except ValueError:
            break
    return OrchestratorActor.options(name=name, namespace=NAMESPACE,
                                     runtime_env={"env_vars": actor_env(job.llm)}).remote(
        bus.config.model_dump(mode="json"), job.orchestrator.model_dump(), pool, job.llm.model_dump(),
        functools.partial(run_batch, bus.config, job.project, queue=queue), job.run_policy.model_dump(), job.hidden)


def drive(bus: Bus, job: ProjectJob, pool: AgentPool, t0: float, grace_s: float, quiet: bool) -> Outcome:
    """One project's orchestrator started and watched until it ends, pauses or fails; a
    drain of only its node starts it again elsewhere (``moves_off_drained_node``).
    SIGTERM and Ctrl-C are a pause while it runs (``PreemptionNotice``)."""
    notice = PreemptionNotice()
    try:
        while True:
            actor = start_orchestrator(bus, job, pool)
            outcome = watch(bus, job, actor, actor.run.remote(), t0, notice, grace_s, quiet)
            ray.kill(actor)
            if not moves_off_drained_node(bus, job.project, outcome, notice):
                return outcome
    finally:
        notice.close()


def moves_off_drained_node(bus: Bus, project: str, outcome: Outcome, notice: PreemptionNotice) -> bool:
    """True when only the orchestrator's node is going away (the driver's is not): the
    pause is lifted (``resumed``) and the caller starts a new orchestrator, which Ray
    places on another node (nothing new goes to a draining one)."""
    if outcome.kind != "moved" or notice.check():
        return False
    bus.project(project).as_role("system", "driver").record("resumed", "the orchestrator moves off its drained node")
    return True


def run_job(bus: Bus, job: ProjectJob, pool: AgentPool | None = None, grace_s: float = 30.0,
            quiet: bool = False) -> ProjectOutcome:
    """Run (or resume) one project to its end or to a pause; returns how it ended, with
    the grade when it ended. SIGTERM and Ctrl-C pause it (``cluster.driver``). While it
    runs, this driver holds the project's lease (``cluster.lease``: ``aisci status``
    tells a dead driver from a running project)."""
    if job.llm.backend == "vllm":  # placed and started before anything is written; its start-up is not the project's
        connect()
        job.llm = place_engine(job.llm, job.orchestrator.budget_s, say=(lambda *_: None) if quiet else console.print)
    t0 = time.time()
    ended_before = prepare(bus, job).stopped is not None  # after its busy check: never another driver's lease
    with DriverLease(bus) as lease:
        lease.hold(job.project)
        return _run_prepared(bus, job, pool, grace_s, quiet, t0, ended_before)


def _took(proj, job: ProjectJob, wall_s: float) -> str:
    """The project's active time (every start, pauses excluded: what its budget counts)
    and, after a resume, this start's (the breaker read a resumed run's 30.5 s as the
    project's, which had run 59 s)."""
    active = State.from_events(proj.events(), job.orchestrator).elapsed_s
    return f"{wall_s:.1f} s" if abs(active - wall_s) < 1 else f"{active:.1f} s of project time ({wall_s:.1f} s this start)"


def _run_prepared(bus: Bus, job: ProjectJob, pool: AgentPool | None, grace_s: float, quiet: bool, t0: float,
                  ended_before: bool) -> ProjectOutcome:
    proj = bus.project(job.project)
    record_model(proj, job.llm)
    if job.run_policy.sandbox == "none" and not quiet:
        why = probe().reason or "the operator's choice"
        console.print(f"[yellow]warning[/yellow]: experiments run UNSANDBOXED ({why}); only code the operator "
                      f"trusts should run so (aisci's own templates, with no model)")
    if not quiet:
        console.print(f"[bold]aisci[/bold] {Task(job.task, job.task_options).id} -> project [bold]{job.project}[/bold] on {bus.root} "
                      f"(model: {job.llm.backend}{'' if job.orchestrator.bus_memory else ', bus memory OFF'})")
    pool = pool or AgentPool(job.agents, bus.config, job.llm, bus_memory=job.orchestrator.bus_memory,
                             env=actor_env(job.llm), executor=SandboxExecutor(bus.config))  # the run tool
    outcome = drive(bus, job, pool, t0, grace_s, quiet)
    out = ProjectOutcome(project=job.project, wall_s=time.time() - t0, **outcome.model_dump())
    if out.kind == "moved":  # the driver's node goes too: a pause
        out.kind = "paused"
    if out.paused or out.failed:
        if not quiet:
            console.print(say_not_done(out))
        return out
    out.grade = grade_of(bus, job.project) if ended_before else None  # resumed after its end: not graded again
    if out.grade is None:
        out.grade = finish_project(bus, job.project, job.task, job.task_options)
    if not quiet:
        grade = out.grade
        console.print(f"[bold]{untrusted(out.reason)}[/bold] after {out.steps} steps, {_took(proj, job, out.wall_s)}")
        console.print(f"grade: score {grade.score} ({'valid' if grade.valid_submission else untrusted(grade.reason)}), "
                      f"[bold]{grade.standing}[/bold]; "
                      f"report: {untrusted(proj.dir / 'report' / 'report.md', 1000)}")
    return out


def say_not_done(out: ProjectOutcome) -> str:
    """The last line of a start that paused or failed (rich markup): what to do next. A
    failure is not a pause: resuming repeats it unless its cause is fixed."""
    if out.failed:
        return (f"[red]failed[/red]: {untrusted(out.reason)}; fix the cause, then `aisci resume {out.project}` "
                f"retries (after {out.steps} steps)")
    return f"[yellow]{untrusted(out.reason)}[/yellow] after {out.steps} steps; continue with `aisci resume {out.project}`"


def _data_kind(task: Task, required: bool) -> str | None:
    """The task's data kind; None where it cannot be derived and ``required`` is not set."""
    try:
        return task.data.kind
    except InvalidTask:
        if required:
            raise
        return None


def make_job(task_dir: str, project: str | None = None, llm: LLMConfig | None = None, budget_s: float = 3600.0,
             target: float | None = None, bus_memory: bool = True, agents: int = 2,
             run_policy: RunPolicy | None = None, allow_unsandboxed: bool = False,
             task_options: TaskOptions | None = None, branches: int = 2, search: str = "grid") -> ProjectJob:
    """A job for ``task_dir`` (with ``task_options.data_dir``: a competition id there).
    The run policy is the operator's (``run_policy``); its sandbox, unless given, is
    bubblewrap, or none where bubblewrap cannot run and either the operator allows it or
    no model writes the code (``default_sandbox``). Raises ``InvalidTask``, also where the
    baseline (no model) is to run a task whose data it cannot make out (``Task.data``); a
    model is left to make sense of such data (task.json says what could not be derived)."""
    task = open_task(task_dir, task_options)
    llm = llm or LLMConfig()
    data_kind = _data_kind(task, required=llm.backend == "baseline")
    project = project or f"{task.id}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    check_project_name(project)  # before Ray starts or anything is written (a one-line error)
    if target is not None and not math.isfinite(target):
        raise UserError(f"--target {target}: give a finite score to stop at (e.g. 0.97), or leave it out")
    low, high = task.metric.bounds
    if target is not None and not low <= target <= high:  # never reached: the project would run its whole budget
        raise UserError(f"--target {target:g}: {task.metric.name} scores lie in [{low:g}, {high:g}]; give a score "
                        "there, or leave it out")
    config = OrchestratorConfig(project=project, task_kind=task.kind, data_kind=data_kind,
                                is_lower_better=task.is_lower_better, target=target, budget_s=budget_s,
                                bus_memory=bus_memory, branches=branches, search=search)
    if run_policy is None:
        run_policy = RunPolicy(sandbox=default_sandbox(llm.backend == "baseline", allow_unsandboxed))
    return ProjectJob(task=str(task.root), task_options=task.options, orchestrator=config, llm=llm, agents=agents,
                      run_policy=run_policy, hidden=tuple(str(p) for p in task.private_paths))


def run_task(bus: Bus, task_dir: str, project: str | None = None, llm: LLMConfig | None = None,
             budget_s: float = 3600.0, target: float | None = None, bus_memory: bool = True,
             agents: int = 2, grace_s: float = 30.0, run_policy: RunPolicy | None = None,
             allow_unsandboxed: bool = False) -> ProjectOutcome:
    job = make_job(task_dir, project, llm, budget_s, target, bus_memory, agents, run_policy, allow_unsandboxed)
    return run_job(bus, job, grace_s=grace_s)


def resume(bus: Bus, project: str, grace_s: float = 30.0) -> ProjectOutcome:
    """``aisci resume PROJECT``: the job saved on the bus, from where the bus says it stopped."""
    return run_job(bus, load_job(bus, project), grace_s=grace_s)
