"""``aisci status | events | report | leaderboard``: projects as the orchestrators left
them on the bus (``status --watch`` keeps the table live)."""

from __future__ import annotations

import argparse
import time

import pyarrow as pa
from rich.live import Live

from actors.state import State
from bus import Bus, BusError, NotFound, query

from .cli_bus import console, print_table, rich_table
from .display import clean, clean_document
from .grading import grade_of
from .job import load_job
from .lease import driver_gone_since


def where_it_stands(bus: Bus, name: str, state: State) -> str:
    """The status column: how the project's events say it ended, or, while they say it
    runs, whether a driver still holds it (``cluster.lease``). Reasons are the model's
    and the agents': cut to 60 characters (``cluster.display`` makes them inert)."""
    if state.failed:
        return "failed: " + clean(state.failed, 60)
    if state.stopped:
        return "stopped: " + clean(state.stopped, 60)
    if state.paused:
        return "paused: " + clean(state.pause_requested or "", 60)
    gone = driver_gone_since(bus, name)
    if gone is not None:  # neither ended, paused nor failed, and no driver: it will not move by itself
        return f"interrupted (no driver since {time.strftime('%H:%M:%S', time.localtime(gone))}): aisci resume {name}"
    if state.pause_requested:
        return "pausing: " + clean(state.pause_requested, 60)
    return "running" if state.steps else "new"


def status_table(bus: Bus, names: list[str]) -> pa.Table:
    rows, now = [], time.time()
    for name in names:
        try:
            events = bus.project(name).events()
        except BusError as e:  # one damaged project does not hide the others
            rows.append({"project": name, "state": f"damaged: {str(e)[:200]}", "steps": None, "in flight": "",
                         "runs": None, "best cv": None, "tokens": None, "last event": "", "score": None, "medal": ""})
            continue
        try:
            config = load_job(bus, name).orchestrator
        except NotFound:
            config = None  # not made by `aisci run` (a sweep's own project, a demo): no runs to rank
        state = State.from_events(events, config)
        last = events.column("time")[-1].as_py().timestamp() if events.num_rows else now
        grade = grade_of(bus, name)
        rows.append({"project": name, "state": where_it_stands(bus, name, state), "steps": state.steps,
                     "in flight": ", ".join(sorted(state.in_flight)[:3]),
                     "runs": len(state.scored_runs),
                     "best cv": round(state.best_run.cv_score, 5) if state.best_run else None, "tokens": state.tokens,
                     "last event": f"{now - last:.0f} s ago", "score": grade.score if grade else None,
                     "medal": grade.medal if grade else ""})
    return pa.Table.from_pylist(rows) if rows else pa.table({"project": pa.array([], pa.string())})


def cmd_status(bus: Bus, args: argparse.Namespace) -> None:
    from .sweep import members

    if args.sweep:
        names = [m["project"] for m in members(bus, args.sweep) if m["project"] in set(bus.projects())]
    else:
        names = [args.project] if args.project else [p for p in bus.projects() if not p.startswith("sweep-")]
    title = f"projects on {bus.root}" + (f" (sweep {args.sweep})" if args.sweep else "")
    if not args.watch:
        print_table(status_table(bus, names), title=title)
        return
    with Live(console=console, refresh_per_second=1) as live:  # until Ctrl-C
        while True:
            live.update(rich_table(status_table(bus, names), title=f"{title} - {time.strftime('%H:%M:%S')}"))
            time.sleep(args.watch)


def cmd_leaderboard(bus: Bus, args: argparse.Namespace) -> None:
    from .leaderboard import leaderboard

    print_table(leaderboard(bus, args.sweep), title=f"sweep {args.sweep}: best grade per task, setting and model")


def cmd_events(bus: Bus, args: argparse.Namespace) -> None:
    table = query.events(bus, args.project, since=args.since)
    print_table(table.select(["seq", "time", "role", "instance", "kind", "path", "summary", "metrics"]),
                title=f"events of {args.project}", limit=args.limit)


def cmd_report(bus: Bus, args: argparse.Namespace) -> None:
    view = bus.project(args.project).as_role("viewer")
    if not view.exists("report/report.md"):
        console.print(f"{args.project} has no report yet (it is written when `aisci run` ends)")
        return
    # The writer's document: printed as written (no markup, no wrapping: rich wraps long
    # words in quadratic time), its control characters shown, never sent to the terminal.
    console.out(clean_document(view.read("report/report.md")), highlight=False)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("status", help="where each project stands")
    s.add_argument("project", nargs="?")
    s.add_argument("--sweep", help="only the projects of this sweep")
    s.add_argument("--watch", type=float, nargs="?", const=2.0, help="refresh every N seconds (default 2) until Ctrl-C")
    s.set_defaults(func=cmd_status)
    b = sub.add_parser("leaderboard", help="a sweep's best grade per task, setting and model; tokens, GPU-hours")
    b.add_argument("sweep")
    b.set_defaults(func=cmd_leaderboard)
    e = sub.add_parser("events", help="a project's events (like `aisci bus log`)")
    e.add_argument("project")
    e.add_argument("--since", type=int, default=0)
    e.add_argument("--limit", type=int, default=200)
    e.set_defaults(func=cmd_events)
    r = sub.add_parser("report", help="print a project's report")
    r.add_argument("project")
    r.set_defaults(func=cmd_report)
