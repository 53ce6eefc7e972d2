"""``aisci status | events | report``: projects as the orchestrators left them on the bus."""

from __future__ import annotations

import argparse
import json

import pyarrow as pa
import pyarrow.compute as pc

from actors.policy import State
from bus import Bus, query

from .cli_bus import console, print_table


def _grade(bus: Bus, name: str) -> dict:
    path = bus.project(name).dir / "report" / "grade.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def cmd_status(bus: Bus, args: argparse.Namespace) -> None:
    names = [args.project] if args.project else bus.projects()
    rows = []
    for name in names:
        events = bus.project(name).events()
        state = State.from_events(events)
        decisions, stopped = (events.filter(pc.equal(events.column("kind"), k)).column("summary").to_pylist()
                              for k in ("decision", "stopped"))
        grade = _grade(bus, name)
        rows.append({"project": name, "steps": state.steps,
                     "last decision": decisions[-1] if decisions else "",
                     "runs": sum(1 for r in state.runs if r["cv_score"] is not None),
                     "state": "stopped: " + stopped[-1] if stopped else ("running or paused" if decisions else "new"),
                     "score": grade.get("score"), "medal": grade.get("medal", "")})
    print_table(pa.Table.from_pylist(rows) if rows else pa.table({"project": []}), title=f"projects on {bus.root}")


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
    s.set_defaults(func=cmd_status)
    e = sub.add_parser("events", help="a project's events (like `aisci bus log`)")
    e.add_argument("project")
    e.add_argument("--since", type=int, default=0)
    e.add_argument("--limit", type=int, default=200)
    e.set_defaults(func=cmd_events)
    r = sub.add_parser("report", help="print a project's report")
    r.add_argument("project")
    r.set_defaults(func=cmd_report)
