"""The ``aisci`` command line: the parser, and ``main``, which runs one command.

    aisci run [TASK]                # the main job: a task until target or budget, then the grade
    aisci paper PAPER               # reproduce a paper (PaperBench): submission/, reproduce.sh, the grade
    aisci resume PROJECT            # continue a paused or interrupted project from the bus
    aisci pause PROJECT             # ask a running project to pause (as a preemption notice does)
    aisci replay PROJECT            # run a recorded project again with no model, at full speed
    aisci sweep sweep.yaml          # a grid of projects at once; the same command resumes it
    aisci status [--sweep S] [--watch] | leaderboard SWEEP
    aisci demo                      # a short tour of the bus on the local root
    aisci bus ls | log P | query ... | compact | repair

This module imports nothing but the standard library: a command names its function
as ``"module:function"`` (``cli_run``, ``cli_projects``, ``cli_bus``), imported only
when it runs. The bus (pyarrow, pandas, scipy) and the models took 1.2-1.6 s to
import, which every ``aisci --help`` paid; it now answers in 0.06-0.09 s on the same
machine (docs/cli-startup.md has the measurements; tests/cluster/test_cli_help.py
holds the imports, not the time).

A user's mistake is one line and exit code 2 (``--debug``: the traceback too); Ctrl-C
outside a running project is exit 130 without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from .cli_types import (
    MAX_BRANCHES,
    _agents,
    _branches,
    _count,
    _gpus,
    _interval,
    _name,
    _seconds,
    _seq,
)
from .ray_noise import hidden_ray_noise

__all__ = ["DEFAULT_TASK", "EXIT_INTERRUPTED", "build_parser", "main"]

DEFAULT_TASK = "digits"  # the shipped task `aisci run` works on when given none
EXIT_INTERRUPTED = 130  # the shell's code for a command ended by Ctrl-C (128 + SIGINT)

_DESCRIPTION = ("aisci: autonomous ML research on Ray. An orchestrator and LLM agents work on a task through a "
                "File-as-Bus workspace of versioned files, run experiments in a sandbox, and end with a grade "
                "(MLE-bench medals) and a report.")
_EPILOG = ("Exit codes of run, resume, replay and sweep: 0 ended and graded; 2 a mistake in the command (one line "
           "says which; --debug adds the traceback); 70 failed (fix the cause, then `aisci resume P`); 75 paused "
           "(`aisci resume P` continues).")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help: its value, or "off" for a switch. An option
    whose default is no value says in its own words what happens without it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is None or action.default is argparse.SUPPRESS:
            return text
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text
        return text + (" (default: off)" if action.default is False else " (default: %(default)s)")


class _Parser(argparse.ArgumentParser):
    """A mistake in the command line is one line, as every other mistake (argparse
    printed the whole usage above it), naming the help that lists the options."""

    def error(self, message: str):
        self.exit(2, f"aisci: {message} (`{self.prog} --help` says more)\n")

    def parse_args(self, args=None, namespace=None):
        """Arguments left over are named with the help of the command they were given
        to (`aisci run digits extra`: `aisci run --help`), not the top level's."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            words = [getattr(parsed, k, None) for k in ("cmd", "bus_cmd", "what")]
            command = " ".join(["aisci", *(w for w in words if isinstance(w, str))])
            self.exit(2, f"aisci: unrecognized arguments: {' '.join(extras)} (`{command} --help` says more)\n")
        return parsed


def _shipped_names() -> str:
    """The shipped tasks' names, found without importing the task library (pandas):
    ``find_spec`` imports only the empty ``benchmarks`` package."""
    import importlib.util
    import os
    spec = importlib.util.find_spec("benchmarks.mlebench")
    roots = [os.path.join(r, "tasks") for r in (spec.submodule_search_locations or [])] if spec else []
    names = sorted(n for r in roots if os.path.isdir(r) for n in os.listdir(r)
                   if os.path.isfile(os.path.join(r, n, "config.yaml")))
    return ", ".join(names) or "none installed"


def _command(sub: argparse._SubParsersAction, name: str, command: str, text: str, *,
             uses_ray: bool = False) -> argparse.ArgumentParser:
    """A subcommand whose function is ``command`` ("module:function" in this package)."""
    p = sub.add_parser(name, help=text, description=text[:1].upper() + text[1:] + ".", formatter_class=_Help)
    p.set_defaults(command=command, uses_ray=uses_ray)
    return p


def _project_arg(p: argparse.ArgumentParser, text: str = "the project's name (`aisci status` lists them)") -> None:
    p.add_argument("project", help=text)


def _cluster_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="a Ray cluster to join: HOST:PORT of its head, or auto (default: $RAY_ADDRESS "
                   "if set, else a new local cluster of this machine)")
    p.add_argument("--grace", type=_seconds, default=30.0, metavar="SECONDS",
                   help="seconds the work in flight gets to finish after a pause is asked (SIGTERM, Ctrl-C)")


def _run_parser(sub: argparse._SubParsersAction) -> None:
    r = _command(sub, "run", "cli_run:cmd_run", "work on a task until the target or the budget is reached, "
                 "then grade it", uses_ray=True)
    r.add_argument("task", nargs="?", default=DEFAULT_TASK, help=f"a shipped task's name ({_shipped_names()}), "
                   "a competition folder in MLE-bench's layout, or with --data-dir a competition id")
    r.add_argument("--data-dir", help="MLE-bench's data dir (DIR/<id>/prepared/...): TASK is then a competition id "
                   "(default: none, TASK is a name or a folder)")
    r.add_argument("--config", help="the competition's config.yaml, where its folder has none (default: the "
                   "folder's, else an installed mlebench package's)")
    r.add_argument("--leaderboard", help="the competition's leaderboard.csv, for medals (default: the folder's; "
                   "without one, no medals)")
    r.add_argument("--metric", help="the metric, where the config's grader is not one aisci knows (default: the "
                   "config's grader)")
    r.add_argument("--id-column", help="the sample submission's id column (default: its first column)")
    r.add_argument("--project", type=_name, help="the project's name; an existing project of the same task is resumed "
                   "(default: <task>-<date>-<time>)")
    r.add_argument("--model", default="baseline", help="who decides and writes the code: baseline (aisci's own "
                   "templates, no model), openai:<model> (an OpenAI-compatible server), vllm:<path> (a vLLM engine "
                   "in the cluster)")
    r.add_argument("--base-url", help="openai: the server's endpoint, e.g. http://localhost:8000/v1 "
                   "(default: $AISCI_LLM_BASE_URL)")
    r.add_argument("--api-key-env", default="OPENAI_API_KEY", help="openai: the environment variable holding "
                   "the key")
    r.add_argument("--tool-calling", choices=["auto", "native", "text"], default="auto",
                   help="openai: native tool calls, JSON calls in the text, or auto: what the server takes "
                   "(asked at start)")
    r.add_argument("--llm-gpus", type=float, help="vllm: GPUs for the engine (default: 1 if the cluster has a "
                   "GPU, else 0: the CPU engine)")
    r.add_argument("--llm-max-model-len", type=int, help="vllm: the context window in tokens (default: the "
                   "model's)")
    r.add_argument("--llm-memory-fraction", type=float, help="vllm: the share of GPU memory (CPU: host memory) "
                   "the engine takes (default: vLLM's; 0.3 on the CPU)")
    r.add_argument("--llm-config", help="vllm: a YAML file of engine settings: gpus, max_model_len, "
                   "memory_fraction, any vLLM engine argument (default: none; the --llm-* flags win over it)")
    r.add_argument("--budget", default="1h", help="wall-clock budget, pauses not counted: 90s, 30m, 2h, 1d")
    r.add_argument("--target", type=float, help="stop experimenting once the best cross-validation score reaches "
                   "this (default: none, work until the budget or the plan ends)")
    r.add_argument("--no-bus-memory", action="store_true", help="the paper's ablation: agents see only the task, "
                   "not what the others wrote")
    r.add_argument("--no-cross-project-memory", action="store_true", help="give the project no prior "
                   "(without this switch the planner reads plan/prior.md: what similar earlier projects on this bus "
                   "found); for an honest comparison of a project on its own (default: off)")
    r.add_argument("--agents", type=_agents, default=2, help="agent actors in the pool")
    r.add_argument("--branches", type=_branches, default=2, metavar="N", help="nodes of the solution tree grown at "
                   f"once (1 to {MAX_BRANCHES}): drafts, improvements of the best, fixes of the failed, their runs in "
                   "parallel (default: 2)")
    r.add_argument("--policy", help="the operator's run policy for every experiment run: a YAML file of sandbox "
                   "(bwrap or none), network, memory_mb, disk_mb, max_timeout_s, env and other limits (default: "
                   "bubblewrap where it runs, no network, 4096 MB)")
    r.add_argument("--allow-network", action="store_true", help="let experiment runs reach the network")
    r.add_argument("--allow-unsandboxed", action="store_true",
                   help="run a model's code without bubblewrap where bubblewrap cannot run (only on machines you "
                   "trust)")
    _cluster_flags(r)


def _paper_parser(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "paper", "cli_paper:cmd_paper", "reproduce a research paper (PaperBench): the agents write "
                 "submission/ with reproduce.sh, which is then run in the sandbox and graded", uses_ray=True)
    p.add_argument("paper", help="a PaperBench paper folder (config.yaml, paper.md, addendum.md, rubric.json, "
                   "blacklist.txt) or a shipped paper's name (scaling-knn-vs-forest)")
    p.add_argument("--project", type=_name, help="the project's name (default: <paper id>-<date>-<time>)")
    p.add_argument("--model", default="baseline", help="who writes the reproduction: baseline (aisci's templates, "
                   "no model), openai:<model>, vllm:<path>")
    p.add_argument("--base-url", help="openai: the server's endpoint (default: $AISCI_LLM_BASE_URL)")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="openai: the environment variable holding the key")
    p.add_argument("--budget", default="24h", help="wall-clock budget of the agents: 90s, 30m, 2h, 1d")
    p.add_argument("--reproduce-timeout", default="1h", help="reproduce.sh's time limit (PaperBench's "
                   "reproduction step)")
    p.add_argument("--reproduce-gpus", type=_gpus, default=0.0, help="GPUs for the reproduction (PaperBench "
                   "reproduces on one A10): the end then runs as a Ray task on a node that has them")
    p.add_argument("--code-dev", action="store_true", help="PaperBench Code-Dev: no reproduction; only the "
                   "rubric's Code Development leaves are graded")
    p.add_argument("--judge", help="who grades: openai:<model> (an OpenAI-compatible server), vllm:<path> (the "
                   "cluster's vLLM engine) or scripted (the deterministic test judge) (default: none, not graded)")
    p.add_argument("--judge-base-url", help="the judge's endpoint (default: $AISCI_JUDGE_BASE_URL, else "
                   "$AISCI_LLM_BASE_URL)")
    p.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", help="the environment variable holding the "
                   "judge's key")
    p.add_argument("--show-rubric", action="store_true", help="also give the agents rubric.json and "
                   "judge.addendum.md (PaperBench's agents never see them; recorded in the report)")
    p.add_argument("--no-bus-memory", action="store_true", help="agents see only the paper, not what the "
                   "others wrote")
    p.add_argument("--agents", type=_agents, default=2, help="agent actors in the pool")
    p.add_argument("--policy", help="the operator's run policy (YAML of RunPolicy fields), for runs and the "
                   "reproduction (default: bubblewrap, no network, 4096 MB)")
    p.add_argument("--allow-network", action="store_true", help="let runs and the reproduction reach the network")
    p.add_argument("--allow-unsandboxed", action="store_true", help="run code without bubblewrap where it cannot "
                   "run (only on machines you trust)")
    _cluster_flags(p)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aisci", description=_DESCRIPTION, epilog=_EPILOG, formatter_class=_Help)
    parser.add_argument("--root", help="the bus's root folder (default: $AISCI_ROOT, else ~/.aisci)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and Ray's own log lines")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    _run_parser(sub)
    _paper_parser(sub)
    c = _command(sub, "resume", "cli_run:cmd_resume", "continue a paused or interrupted project from the bus",
                 uses_ray=True)
    _project_arg(c)
    _cluster_flags(c)
    p = _command(sub, "pause", "cli_projects:cmd_pause", "ask a running project to pause (as SIGTERM does)")
    _project_arg(p)
    p.add_argument("--reason", default="paused by `aisci pause`", help="why, recorded on the bus")
    y = _command(sub, "replay", "cli_run:cmd_replay", "run a recorded project again with no model: its recorded "
                 "model calls, at full speed (a paper project: its grade, from the judge's recorded calls)",
                 uses_ray=True)
    _project_arg(y, "the recorded project")
    y.add_argument("--project", type=_name, dest="into", help="the new project's name (default: <project>-replay-<time>)")
    y.add_argument("--realtime", action="store_true", help="keep each model call's recorded latency")
    _cluster_flags(y)
    w = _command(sub, "sweep", "cli_run:cmd_sweep", "run a grid of tasks and papers x settings x seeds x models as "
                 "concurrent projects; the same command resumes it", uses_ray=True)
    w.add_argument("file", help="the sweep's YAML file: name, tasks, papers, paper, settings, seeds, models, "
                   "budget, max_concurrent, agents, policy (the README's Sweeps section shows one)")
    _cluster_flags(w)
    s = _command(sub, "status", "cli_projects:cmd_status", "where each project stands")
    s.add_argument("project", nargs="?", help="one project (default: every project but sweeps' own)")
    s.add_argument("--sweep", help="only the projects of this sweep, started or waiting (default: none)")
    s.add_argument("--watch", type=_interval, nargs="?", const=2.0, metavar="SECONDS",
                   help="keep the table live, refreshed every SECONDS (2 if none given), until Ctrl-C "
                   "(default: print it once)")
    b = _command(sub, "leaderboard", "cli_projects:cmd_leaderboard", "a sweep's best grade per task, setting and "
                 "model, with tokens and GPU-hours")
    b.add_argument("sweep", help="the sweep's name (its file's `name:`)")
    e = _command(sub, "events", "cli_projects:cmd_events", "a project's events (as `aisci bus log`)")
    _project_arg(e)
    e.add_argument("--since", type=_seq, default=0, metavar="SEQ", help="only events after this sequence number")
    e.add_argument("--limit", type=_count, default=200, metavar="N", help="show at most the last N events")
    r = _command(sub, "report", "cli_projects:cmd_report", "print a project's report")
    _project_arg(r)
    _command(sub, "demo", "cli_bus:cmd_demo", "a short tour of the bus: demo projects written and queried")
    _bus_parser(sub)
    return parser


def _bus_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bus", help="inspect and maintain the File-as-Bus", formatter_class=_Help,
                       description="Inspect and maintain the File-as-Bus.")
    bus_sub = p.add_subparsers(dest="bus_cmd", required=True, metavar="BUS_COMMAND")
    _command(bus_sub, "ls", "cli_bus:cmd_ls", "list the projects, their events and last activity")
    log = _command(bus_sub, "log", "cli_bus:cmd_log", "a project's events")
    _project_arg(log)
    log.add_argument("--since", type=_seq, default=0, metavar="SEQ", help="only events after this sequence number")
    log.add_argument("--kind", action="append", help="only events of this kind, e.g. write, experiment, decision "
                     "(repeatable; default: every kind)")
    log.add_argument("--limit", type=_count, default=200, metavar="N", help="show at most the last N events")
    q = bus_sub.add_parser("query", help="queries over the event index", formatter_class=_Help,
                           description="Queries over the event index.")
    qs = q.add_subparsers(dest="what", required=True, metavar="QUERY")
    best = _command(qs, "best", "cli_bus:cmd_query", "the best metric per project, across all projects")
    best.add_argument("--metric", required=True, help="the metric's name, e.g. cv_score or score (required)")
    best.add_argument("--mode", choices=["task", "max", "min"], default="task",
                      help="task: each project by its own metric's direction; max or min: all the same way")
    tokens = _command(qs, "tokens", "cli_bus:cmd_query", "tokens spent per project, role and model; cached "
                      "tokens and the cache hit rate")
    tokens.add_argument("--project", type=_name, help="one project (default: all)")
    files = _command(qs, "files", "cli_bus:cmd_query", "the latest version of every file of a project")
    _project_arg(files)
    prior = _command(qs, "prior", "cli_bus:cmd_query", "what similar earlier projects found: the prior a "
                     "project of PROJECT's task class gets (memory across projects)")
    _project_arg(prior)
    wmap = _command(qs, "map", "cli_bus:cmd_query", "the workspace map one role re-grounds on")
    _project_arg(wmap)
    wmap.add_argument("--role", default="viewer", help="the role: analyst, planner, coder, experimenter, "
                      "debugger, writer or viewer")
    for name, text in (("compact", "move journal rows into Parquet segments"),
                       ("repair", "after a crash: make the index match the files (while the project is idle)")):
        c = _command(bus_sub, name, f"cli_bus:cmd_{name}", text)
        c.add_argument("project", nargs="?", help="one project (default: all)")


def _function(command: str):
    module, name = command.split(":")
    return getattr(importlib.import_module(f".{module}", __package__), name)


def _value_options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string (of every command) that takes one value."""
    out: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                out |= _value_options(child)
        elif action.option_strings and action.nargs is None and action.const is None:
            out.update(s for s in action.option_strings if s.startswith("--"))
    return out


def _negative_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``--budget -5m`` as ``--budget=-5m``: argparse reads a value that starts with a
    dash (and is not a plain negative number) as an unknown option and answers "expected
    one argument", which hides the real mistake; joined, the option's own check says what
    is wrong with the value."""
    takes, out, i = _value_options(parser), [], 0
    while i < len(argv):
        token = argv[i]
        if token in takes and i + 1 < len(argv) and argv[i + 1][:1] == "-" and argv[i + 1][1:2].isdigit():
            out.append(f"{token}={argv[i + 1]}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(_negative_values(parser, sys.argv[1:] if argv is None else list(argv)))
    except SystemExit as e:  # --help (0), or a mistake argparse found (2, its one line printed)
        return e.code if isinstance(e.code, int) else 2
    try:
        with hidden_ray_noise(args.uses_ray and not args.debug):
            from .cli_bus import (
                open_bus,  # the bus (pyarrow, pandas): imported after parsing, not for --help
            )

            _function(args.command)(open_bus(args.root), args)
    except KeyboardInterrupt as e:  # a running project turns Ctrl-C into a pause (cluster.driver): this is the rest
        if args.debug:
            traceback.print_exc()
        print(f"aisci: interrupted ({e or 'Ctrl-C'})", file=sys.stderr)  # e: a signal held while Ray started
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the one place user errors become a line
        from .display import clean
        from .errors import one_line

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
