"""The ``aisci`` command line.

    aisci run [TASK]                # the main job: a task until target or budget, then the grade
    aisci resume PROJECT            # continue a paused or interrupted project from the bus
    aisci pause PROJECT             # ask a running project to pause (as a preemption notice does)
    aisci replay PROJECT            # run a recorded project again with no model, at full speed
    aisci sweep sweep.yaml          # a grid of projects at once; the same command resumes it
    aisci status [--sweep S] [--watch] | leaderboard SWEEP
    aisci demo                      # a short tour of the bus on the local root
    aisci bus ls | log P | query ... | compact | repair

``--root`` (or ``AISCI_ROOT``) picks the bus root; default ``~/.aisci``. Ray: a new
local cluster unless ``--address`` (or ``RAY_ADDRESS``, as under ``ray job submit``)
names one to join. A user's mistake is one line and exit code 2 (``--debug``: the
traceback too); a paused project exits 75, a failed one 70 (``finish``).
"""

from __future__ import annotations

import argparse
import sys
import traceback

from bus import Bus

from . import cli_bus, cli_projects, demo
from .display import clean, untrusted
from .errors import UserError, one_line
from .tasks import DEFAULT_TASK

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
    from actors.runs import RunPolicy

    from .run import load_policy

    base = load_policy(args.policy) if args.policy else None
    if base is None and not args.allow_network:
        return None  # make_job picks the sandbox (it needs to know whether a model writes code)
    base = base or RunPolicy()
    return base.model_copy(update={"network": True}) if args.allow_network else base


def cmd_run(bus: Bus, args: argparse.Namespace) -> None:
    from actors.llm.config import parse_model

    from benchmarks.mlebench.task import TaskOptions, open_task

    from .run import connect, parse_budget, run_job, make_job
    from .tasks import find_task

    options = TaskOptions(config=args.config, leaderboard=args.leaderboard, metric=args.metric,
                          id_column=args.id_column, data_dir=args.data_dir)
    if args.data_dir:  # a competition id in MLE-bench's data dir: its folder, config and leaderboard found
        found = open_task(args.task, options)
        task, options = found.root, found.options
    else:
        task = find_task(args.task)
    llm = parse_model(args.model, base_url=args.base_url, api_key_env=args.api_key_env)
    llm = check_model(llm.model_copy(update={"tool_calling": args.tool_calling}))  # before Ray or any state
    llm = _engine_settings(llm, args)
    job = make_job(str(task), args.project, llm, parse_budget(args.budget), args.target, not args.no_bus_memory,
                   args.agents, _operator_policy(args), args.allow_unsandboxed,
                   options)
    connect(args.address)
    finish([run_job(bus, job, grace_s=args.grace)])


def check_model(llm):
    """An OpenAI-compatible server asked what it can do (``actors.llm.capabilities``):
    the config with the tool-calling mode and the window it found, said on screen.
    Raises ``ServerCheckFailed`` (one line: what to change)."""
    if llm.backend != "openai":
        return llm
    from actors.llm.capabilities import check_server

    from .driver import console

    asked = llm.tool_calling
    llm, caps = check_server(llm)
    why = ("as asked; " if asked != "auto" else "") + (
        "the server takes tools" if caps.tools else f"the server refuses tools: {caps.tools_error}")
    console.print(f"model {untrusted(llm.model)} at {untrusted(llm.base_url)}: tool calls [bold]{llm.tool_calling}"
                  f"[/bold] ({untrusted(why)}), context window {llm.context_tokens or 'unknown'} tokens",
                  markup=True, highlight=False)  # the server's error message is the server's: escaped
    return llm


def _engine_settings(llm, args: argparse.Namespace):
    """--llm-config FILE, then the --llm-* flags over it, into the vllm engine's settings."""
    from actors.llm.config import with_engine

    from .run import load_yaml_mapping

    base = load_yaml_mapping(args.llm_config, "--llm-config", "vLLM engine settings (gpus, max_model_len, "
                             "memory_fraction, any vLLM engine arg)") if args.llm_config else {}
    return with_engine(llm, base, {"gpus": args.llm_gpus, "max_model_len": args.llm_max_model_len,
                                   "memory_fraction": args.llm_memory_fraction})  # the flags' names in errors


def _llm_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--llm-gpus", type=float, help="vllm: GPUs for the engine (default: 1 if the cluster has a GPU, "
                   "else 0: the CPU engine)")
    p.add_argument("--llm-max-model-len", type=int, help="vllm: the context window in tokens (default: the model's)")
    p.add_argument("--llm-memory-fraction", type=float, help="vllm: share of GPU memory (CPU: host memory) the "
                   "engine takes (default: vLLM's; 0.3 on the CPU)")
    p.add_argument("--llm-config", help="vllm: a YAML file of engine settings (the keys above, any vLLM engine arg)")


def cmd_resume(bus: Bus, args: argparse.Namespace) -> None:
    from .job import load_job
    from .run import connect, run_job

    job = load_job(bus, args.project)  # an unknown project is one line, before Ray starts
    connect(args.address)
    finish([run_job(bus, job, grace_s=args.grace)])


def cmd_sweep(bus: Bus, args: argparse.Namespace) -> None:
    from .sweep import SweepSpec, run_sweep

    spec = SweepSpec.load(args.file)
    spec.jobs()  # every grid point checked before anything starts
    finish(run_sweep(bus, spec, args.grace, address=args.address))


def cmd_replay(bus: Bus, args: argparse.Namespace) -> None:
    from .replay import replay_job
    from .run import connect, run_job

    job = replay_job(bus, args.project, args.into, args.realtime)  # checked before Ray starts
    connect(args.address)
    finish([run_job(bus, job, grace_s=args.grace)])


def cmd_pause(bus: Bus, args: argparse.Namespace) -> None:
    bus.project(args.project).as_role("system", "cli").record("pause_requested", args.reason)
    print(f"asked {args.project} to pause; its orchestrator stops dispatching at its next step "
          f"(`aisci resume {args.project}` continues)")


def _cluster_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="a Ray cluster to join (default: $RAY_ADDRESS, else a new local one)")
    p.add_argument("--grace", type=_seconds, default=30.0, help="seconds work in flight gets after a preemption notice")


def _seconds(text: str) -> float:
    """A non-negative, finite number of seconds (argparse turns the error into one line)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} seconds: give a number from 0 up")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aisci", description=__doc__.split("\n")[0])
    parser.add_argument("--root", help="bus root folder (default: $AISCI_ROOT or ~/.aisci)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks (and Ray's own output)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="create demo projects on the bus, write and query them")
    d.set_defaults(func=lambda bus, args: demo.run(bus))
    r = sub.add_parser("run", help="work on a task until the target or the budget is reached")
    r.add_argument("task", nargs="?", default=DEFAULT_TASK, help="a shipped task's name, a competition folder in "
                   f"MLE-bench's layout, or with --data-dir a competition id (default: {DEFAULT_TASK})")
    r.add_argument("--data-dir", help="MLE-bench's data dir (<dir>/<id>/prepared/...): TASK is a competition id")
    r.add_argument("--config", help="the competition's config.yaml, where its folder has none")
    r.add_argument("--leaderboard", help="the competition's leaderboard.csv (medals), where its folder has none")
    r.add_argument("--metric", help="the metric, where the config's grader.name is not one aisci knows")
    r.add_argument("--id-column", help="the sample submission's id column, where it is not the first")
    r.add_argument("--project", help="project name (default: <task>-<time>); an existing one is resumed")
    r.add_argument("--model", default="baseline", help="baseline (no model), openai:<model>, vllm:<path>")
    r.add_argument("--base-url", help="openai: the endpoint, e.g. http://localhost:8000/v1 "
                   "(default: $AISCI_LLM_BASE_URL)")
    r.add_argument("--api-key-env", default="OPENAI_API_KEY", help="openai: the variable holding the key")
    r.add_argument("--tool-calling", choices=["auto", "native", "text"], default="auto",
                   help="openai: native tool calls, JSON calls in the text, or auto: what the server takes "
                   "(probed at start)")
    _llm_flags(r)
    r.add_argument("--budget", default="1h", help="wall-clock budget: 90s, 30m, 2h, 1d")
    r.add_argument("--target", type=float, help="stop experimenting once the best CV score reaches this")
    r.add_argument("--no-bus-memory", action="store_true", help="the paper's ablation: agents see only task/")
    r.add_argument("--agents", type=int, default=2, help="agent actors in the pool")
    r.add_argument("--policy", help="the operator's run policy: a YAML file of RunPolicy fields (actors/runs.py)")
    r.add_argument("--allow-network", action="store_true", help="let experiment runs reach the network")
    r.add_argument("--allow-unsandboxed", action="store_true",
                   help="run a model's code without bubblewrap where it cannot run (only on machines you trust)")
    _cluster_flags(r)
    r.set_defaults(func=cmd_run)
    c = sub.add_parser("resume", help="continue a paused or interrupted project from the bus")
    c.add_argument("project")
    _cluster_flags(c)
    c.set_defaults(func=cmd_resume)
    w = sub.add_parser("sweep", help="run a grid of tasks x settings x seeds x models as concurrent projects")
    w.add_argument("file", help="the sweep's YAML file (see cluster/sweep.py)")
    _cluster_flags(w)
    w.set_defaults(func=cmd_sweep)
    y = sub.add_parser("replay", help="run a recorded project again with no model (its recorded calls)")
    y.add_argument("project")
    y.add_argument("--project", dest="into", help="the new project's name (default: <project>-replay-<time>)")
    y.add_argument("--realtime", action="store_true", help="keep each call's recorded latency (default: full speed)")
    _cluster_flags(y)
    y.set_defaults(func=cmd_replay)
    p = sub.add_parser("pause", help="ask a running project to pause")
    p.add_argument("project")
    p.add_argument("--reason", default="paused by `aisci pause`")
    p.set_defaults(func=cmd_pause)
    cli_projects.add_parsers(sub)
    cli_bus.add_parser(sub)
    return parser


def open_bus(root: str | None) -> Bus:
    try:
        return Bus(root)
    except OSError as e:  # read-only, not ours, not there and not creatable
        raise UserError(f"cannot use {e.filename or root} as the bus root ({e.strerror}): give a folder you can "
                        "write (--root DIR or AISCI_ROOT)") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(open_bus(args.root), args)
    except Exception as e:  # noqa: BLE001 - the one place user errors become a line
        line = one_line(e)
        if line is None:
            raise  # a fault of aisci: the traceback is the report
        if args.debug:
            traceback.print_exc()
        print(f"aisci: {clean(line, 2000)}", file=sys.stderr)  # may quote a model's or a file's text
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
