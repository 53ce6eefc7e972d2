"""The ``aisci`` command line.

    aisci run [TASK]                # the main job: a task until target or budget, then the grade
    aisci resume PROJECT            # continue a paused or interrupted project from the bus
    aisci pause PROJECT             # ask a running project to pause (as a preemption notice does)
    aisci sweep sweep.yaml          # a grid of projects at once; the same command resumes it
    aisci status [--sweep S] [--watch] | leaderboard SWEEP
    aisci demo                      # a short tour of the bus on the local root
    aisci bus ls | log P | query ... | compact | repair

``--root`` (or ``AISCI_ROOT``) picks the bus root; default ``~/.aisci``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bus import Bus, BusError

from . import cli_bus, cli_projects, demo

DEFAULT_TASK = Path(__file__).resolve().parent.parent / "benchmarks" / "tasks" / "digits"


def llm_config(spec: str):
    from actors.llm.config import parse_model

    try:
        return parse_model(spec)
    except ValueError as e:
        raise SystemExit(f"aisci: --{e}") from None


EXIT_PAUSED = 75  # EX_TEMPFAIL: not done, try again (`aisci resume`)


def cmd_run(bus: Bus, args: argparse.Namespace) -> None:
    from .run import parse_budget, run_task

    try:
        budget = parse_budget(args.budget)
    except ValueError as e:
        raise SystemExit(f"aisci: {e}") from None
    out = run_task(bus, args.task, args.project, llm_config(args.model), budget, args.target,
                   not args.no_bus_memory, args.agents, args.grace)
    if out["paused"]:
        raise SystemExit(EXIT_PAUSED)


def cmd_resume(bus: Bus, args: argparse.Namespace) -> None:
    from .run import resume

    if resume(bus, args.project, args.grace)["paused"]:
        raise SystemExit(EXIT_PAUSED)


def cmd_sweep(bus: Bus, args: argparse.Namespace) -> None:
    from .sweep import SweepSpec, run_sweep

    try:
        spec = SweepSpec.load(args.file)
        spec.jobs()  # every grid point checked before anything starts
    except ValueError as e:
        raise SystemExit(f"aisci: {e}") from None
    if any(o["paused"] for o in run_sweep(bus, spec, args.grace)):
        raise SystemExit(EXIT_PAUSED)


def cmd_pause(bus: Bus, args: argparse.Namespace) -> None:
    bus.project(args.project).as_role("system", "cli").record("pause_requested", args.reason)
    print(f"asked {args.project} to pause; its orchestrator stops dispatching at its next step "
          f"(`aisci resume {args.project}` continues)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aisci", description=__doc__.split("\n")[0])
    parser.add_argument("--root", help="bus root folder (default: $AISCI_ROOT or ~/.aisci)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="create demo projects on the bus, write and query them")
    d.set_defaults(func=lambda bus, args: demo.run(bus))
    r = sub.add_parser("run", help="work on a task until the target or the budget is reached")
    r.add_argument("task", nargs="?", default=str(DEFAULT_TASK), help=f"a task folder (default: {DEFAULT_TASK.name})")
    r.add_argument("--project", help="project name (default: <task>-<time>); an existing one is resumed")
    r.add_argument("--model", default="baseline", help="baseline (no model), openai:<model>, vllm:<path>")
    r.add_argument("--budget", default="1h", help="wall-clock budget: 90s, 30m, 2h, 1d")
    r.add_argument("--target", type=float, help="stop experimenting once the best CV score reaches this")
    r.add_argument("--no-bus-memory", action="store_true", help="the paper's ablation: agents see only task/")
    r.add_argument("--agents", type=int, default=2, help="agent actors in the pool")
    r.add_argument("--grace", type=float, default=30.0, help="seconds work in flight gets after a preemption notice")
    r.set_defaults(func=cmd_run)
    c = sub.add_parser("resume", help="continue a paused or interrupted project from the bus")
    c.add_argument("project")
    c.add_argument("--grace", type=float, default=30.0, help="seconds work in flight gets after a preemption notice")
    c.set_defaults(func=cmd_resume)
    w = sub.add_parser("sweep", help="run a grid of tasks x settings x seeds x models as concurrent projects")
    w.add_argument("file", help="the sweep's YAML file (see cluster/sweep.py)")
    w.add_argument("--grace", type=float, default=30.0, help="seconds work in flight gets after a preemption notice")
    w.set_defaults(func=cmd_sweep)
    p = sub.add_parser("pause", help="ask a running project to pause")
    p.add_argument("project")
    p.add_argument("--reason", default="paused by `aisci pause`")
    p.set_defaults(func=cmd_pause)
    cli_projects.add_parsers(sub)
    cli_bus.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        bus = Bus(args.root)
        args.func(bus, args)
    except BusError as e:
        print(f"aisci: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
