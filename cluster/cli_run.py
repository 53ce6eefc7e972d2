"""The commands of ``aisci`` that run projects: ``run``, ``resume``, ``replay``,
``sweep`` (the parser is ``cluster.cli``, which imports this module only when one of
them runs: Ray, the bus and the models load then, not for ``--help``). A project that
ended and was graded is not started again: its grade is shown (``said_ended``).

Exit codes: a paused project exits 75, a failed one 70 (``finish``); a user's mistake
is one line and 2 (``cluster.cli.main``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import ray
from pydantic import ValidationError

from actors.llm.config import parse_model, with_engine
from actors.runs import RunPolicy
from actors.state import State
from benchmarks.mlebench.task import InvalidTask, Task, TaskOptions, open_task
from bus import Bus, NotFound

from .display import untrusted
from .driver import console
from .engine import check_vllm
from .errors import UserError
from .grading import grade_of
from .job import ProjectJob, load_job
from .replay import replay_job
from .run import (
    connect,
    load_policy,
    load_yaml_mapping,
    make_job,
    parse_budget,
    run_job,
)
from .sweep import SweepSpec, pending, run_sweep
from .tasks import find_task

__all__ = ["EXIT_FAILED", "EXIT_PAUSED", "check_model", "cmd_replay", "cmd_resume", "cmd_run",
           "cmd_sweep", "finish"]

EXIT_PAUSED = 75  # EX_TEMPFAIL: not done, try again (`aisci resume`): a loop may re-submit on it
EXIT_FAILED = 70  # EX_SOFTWARE: the orchestrator raised; trying again repeats it until the cause is fixed


def finish(outcomes) -> None:
    """Exit with the code of how the projects of this command ended: 0 when all ended,
    70 when one failed (even if others paused: a job re-submitted on 75 would otherwise
    repeat the failure forever), 75 when one paused."""
    outcomes = list(outcomes)
    if any(o.failed for o in outcomes):
        raise SystemExit(EXIT_FAILED)
    if any(o.paused for o in outcomes):
        raise SystemExit(EXIT_PAUSED)


def _operator_policy(args: argparse.Namespace):
    """The run policy from --policy FILE (YAML, RunPolicy's fields) and the switches."""
    base = load_policy(args.policy) if args.policy else None
    if base is None and not args.allow_network:
        return None  # make_job picks the sandbox (it needs to know whether a model writes code)
    base = base or RunPolicy()
    return base.model_copy(update={"network": True}) if args.allow_network else base


def _check_files(args: argparse.Namespace) -> None:
    """The task's files the user named are there (--policy and --llm-config are read
    at once, and say so themselves). Raises ``UserError`` (before anything starts)."""
    for flag, path in (("--config", args.config), ("--leaderboard", args.leaderboard)):
        if path and not Path(path).expanduser().is_file():
            raise UserError(f"{flag} {path}: no such file")


def cmd_run(bus: Bus, args: argparse.Namespace) -> None:
    _check_files(args)
    options = TaskOptions(config=args.config, leaderboard=args.leaderboard, metric=args.metric,
                          id_column=args.id_column, data_dir=args.data_dir)
    if args.data_dir:  # a competition id in MLE-bench's data dir: its folder, config and leaderboard found
        found = open_task(args.task, options)
        task, options = found.root, found.options
    else:
        task = find_task(args.task)
    llm = parse_model(args.model, base_url=args.base_url, api_key_env=args.api_key_env)
    llm = _engine_settings(llm.model_copy(update={"tool_calling": args.tool_calling}), args)
    llm = check_model(llm)  # before Ray or any state
    job = make_job(str(task), args.project, llm, parse_budget(args.budget), args.target, not args.no_bus_memory,
                   args.agents, _operator_policy(args), args.allow_unsandboxed,
                   options, branches=args.branches, search="tree")  # a sweep keeps the flat grid: it measures
    job.cross_project_memory = not args.no_cross_project_memory
    if job.project in bus.projects():
        _check_same_task(bus, job)
        if said_ended(bus, job.project):
            return
    _connect(args.address)
    finish([run_job(bus, job, grace_s=args.grace)])


def _connect(address: str | None) -> None:
    """Start or join Ray (``cluster.connect.connect``) and say which cluster this is: Ray's
    own start-up lines are not shown (``cluster.ray_noise``)."""
    connect(address)
    joined = address or os.environ.get("RAY_ADDRESS")
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    have = ray.cluster_resources()
    console.print(f"Ray: {f'joined {untrusted(joined)}' if joined else 'a new local cluster'} at "
                  f"{ray.get_runtime_context().gcs_address} ({nodes} node{'s' if nodes != 1 else ''}, "
                  f"{have.get('CPU', 0):g} CPUs, {have.get('GPU', 0):g} GPUs)", highlight=False)


def check_model(llm):
    """An OpenAI-compatible server asked what it can do (``actors.llm.capabilities``):
    the config with the tool-calling mode and the window it found, said on screen; a
    vLLM model checked by ``check_vllm``. Raises ``ServerCheckFailed`` or ``UserError``
    (one line: what to change)."""
    if llm.backend == "vllm":
        check_vllm(llm)
    if llm.backend != "openai":
        return llm
    # Here, not at the top: openai takes 0.4 s to import, needed only with --model openai:...
    from actors.llm.capabilities import check_server

    asked = llm.tool_calling
    llm, caps = check_server(llm)
    why = ("as asked; " if asked != "auto" else "") + (
        "the server takes tools" if caps.tools else f"the server refuses tools: {caps.tools_error}")
    console.print(f"model {untrusted(llm.model)} at {untrusted(llm.base_url)}: tool calls [bold]{llm.tool_calling}"
                  f"[/bold] ({untrusted(why)}), context window "
                  f"{f'{llm.context_tokens} tokens' if llm.context_tokens else 'unknown'}",
                  markup=True, highlight=False)  # the server's error message is the server's: escaped
    return llm


def _engine_settings(llm, args: argparse.Namespace):
    """--llm-config FILE, then the --llm-* flags over it, into the vllm engine's settings."""
    base = load_yaml_mapping(args.llm_config, "--llm-config", "vLLM engine settings (gpus, max_model_len, "
                             "memory_fraction, any vLLM engine arg)") if args.llm_config else {}
    flags = {"gpus": args.llm_gpus, "max_model_len": args.llm_max_model_len, "memory_fraction": args.llm_memory_fraction}
    try:
        return with_engine(llm, base, flags)
    except ValidationError as e:  # a flag named as the user typed it (not the model's field): one line
        err = e.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        if flags.get(name) is None:
            raise  # the file's: errors.one_line names the setting
        value = format(flags[name], "g") if isinstance(flags[name], float) else flags[name]
        raise UserError(f"--llm-{name.replace('_', '-')} {value}: {err['msg'].lower()}") from None


def cmd_resume(bus: Bus, args: argparse.Namespace) -> None:
    job = load_job(bus, args.project)  # an unknown project is one line, before Ray starts
    if job.orchestrator.track == "paper":  # resumed as `aisci paper` runs it: its settings are the operator's
        from .paper_end import ended_line
        from .paper_run import run_paper
        from .paper_settings import settings_of

        settings = settings_of(bus, args.project)
        if settings is None:
            raise UserError(f"{args.project} reproduces a paper, and its settings are gone: `aisci paper "
                            f"{job.task} --project {args.project}` continues it")
        if (line := ended_line(bus, args.project)) is not None:
            console.print(untrusted(line))
            return
        _connect(args.address)
        finish([run_paper(bus, job, settings, grace_s=args.grace)])
        return
    if said_ended(bus, job.project):
        return
    _connect(args.address)
    finish([run_job(bus, job, grace_s=args.grace)])


def cmd_sweep(bus: Bus, args: argparse.Namespace) -> None:
    spec = SweepSpec.load(args.file)
    if not pending(bus, spec, spec.jobs()):  # every grid point checked before anything starts
        return  # nothing to run: no cluster joined
    _connect(args.address)
    finish(run_sweep(bus, spec, args.grace, address=args.address))


def cmd_replay(bus: Bus, args: argparse.Namespace) -> None:
    if load_job(bus, args.project).orchestrator.track == "paper":
        return _replay_paper_grade(bus, args)
    job = replay_job(bus, args.project, args.into, args.realtime)  # checked before Ray starts
    _connect(args.address)
    finish([run_job(bus, job, grace_s=args.grace)])


def _replay_paper_grade(bus: Bus, args: argparse.Namespace) -> None:
    """A paper project's replay: its grade from the judge's recorded calls, no model, no
    Ray, nothing written (``cluster.paper_replay``); exit 70 where it differs."""
    from .paper_replay import replay_grade

    if args.into:
        raise UserError(f"{args.project} reproduces a paper: its replay re-grades it from the judge's recorded "
                        "calls and writes nothing; leave --project out")
    replayed, recorded, differ = replay_grade(bus, args.project)
    said = f"{replayed.score:.3f} ({replayed.num_leaf_nodes} leaves) against the recorded {recorded['score']:.3f}"
    if differ:
        console.print(f"[red]the replayed grade differs[/red]: {said}; leaves: {untrusted('; '.join(differ), 2000)}")
        raise SystemExit(EXIT_FAILED)
    console.print(f"replayed the judge's recorded calls with no model: PaperBench score {said}, the same on every leaf")


def _task_id(job: ProjectJob) -> str:
    try:
        return Task(job.task, job.task_options).id
    except InvalidTask:  # its folder is not on this machine (a bus shared with other nodes): its name says it
        return Path(job.task).name


def _check_same_task(bus: Bus, job: ProjectJob) -> None:
    """``aisci run TASK --project P`` resumes P only if P works on TASK. Raises
    ``UserError`` (before anything is written: the job of P would be rewritten)."""
    try:
        before = load_job(bus, job.project)
    except NotFound:  # started, but stopped before its job was saved: this run saves it
        return
    if Path(before.task) != Path(job.task) and _task_id(before) != _task_id(job):
        raise UserError(f"project {job.project!r} works on the task {_task_id(before)!r} ({before.task}), not "
                        f"{_task_id(job)!r}: give a new --project, or `aisci resume {job.project}` to continue it")


def said_ended(bus: Bus, project: str) -> bool:
    """True, having said so with its grade, when ``project`` ended and was graded: a
    run or resume of it has nothing to do (and starts no Ray)."""
    state = State.from_events(bus.project(project).events())
    grade = grade_of(bus, project) if state.stopped else None
    if grade is None:  # not ended, or ended before its grade was recorded: the start grades it
        return False
    verdict = "valid" if grade.valid_submission else f"invalid: {untrusted(grade.reason)}"
    console.print(f"{project} ended already ({untrusted(state.stopped)}); nothing more to do")
    console.print(f"grade: score {grade.score} ({verdict}), [bold]{grade.standing}[/bold]; "
                  f"report: `aisci report {project}`")
    return True
