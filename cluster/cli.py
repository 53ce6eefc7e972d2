"""The ``aisci`` command line.

    aisci run [TASK]                # the main job: a task until target or budget, then the grade
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
    from actors.llm.config import LLMConfig

    backend, _, model = spec.partition(":")
    if backend not in ("baseline", "openai", "vllm"):
        raise SystemExit(f"aisci: --model {spec!r}: use baseline, openai:<model> or vllm:<model path>")
    return LLMConfig(backend=backend, model=model)


def cmd_run(bus: Bus, args: argparse.Namespace) -> None:
    from .run import parse_budget, run_task

    try:
        budget = parse_budget(args.budget)
    except ValueError as e:
        raise SystemExit(f"aisci: {e}") from None
    run_task(bus, args.task, args.project, llm_config(args.model), budget, args.target,
             not args.no_bus_memory, args.agents)


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
    r.set_defaults(func=cmd_run)
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
