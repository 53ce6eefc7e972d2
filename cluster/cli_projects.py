"""``aisci status | events | report | leaderboard``: projects as the orchestrators left
them on the bus (``status --watch`` keeps the table live)."""

from __future__ import annotations

import argparse
import time

import pyarrow as pa
from rich.live import Live

from actors.state import State
from bus import Bus, NotFound, query

from .cli_bus import console, print_table, rich_table
from .grading import grade_of
from .job import load_job


def status_table(bus: Bus, names: list[str]) -> pa.Table:
    rows, now = [], time.time()
    for name in names:
        events = bus.project(name).events()
        try:
            config = load_job(bus, name).orchestrator
        except NotFound:
            config = None  # not made by `aisci run` (a sweep's own project, a demo): no runs to rank
        state = State.from_events(events, config)
        last = events.column("time")[-1].as_py().timestamp() if events.num_rows else now
        if state.failed:
            where = "failed: " + state.failed
        elif state.stopped:
            where = "stopped: " + state.stopped
        elif state.paused:
            where = "paused: " + (state.pause_requested or "")
        elif state.pause_requested:
            where = "pausing: " + state.pause_requested
        else:
            where = "running" if state.steps else "new"
        best = state.best_run
        grade = grade_of(bus, name)
        rows.append({"project": name, "state": where[:60], "steps": state.steps,
                     "in flight": ", ".join(sorted(state.in_flight)[:3]),
                     "runs": len(state.scored_runs),
                     "best cv": round(best.cv_score, 5) if best else None, "tokens": state.tokens,
                     "last event": f"{now - last:.0f} s ago", "score": grade.score if grade else None, "medal": grade.medal if grade else ""})
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
    console.print(view.read("report/report.md"), markup=False)


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
