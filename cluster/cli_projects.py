"""``aisci status | events | report | leaderboard | pause``: projects as the
orchestrators left them on the bus (``status --watch`` keeps the table live), and the
request to pause one."""

from __future__ import annotations

import argparse
import signal
import time

import pyarrow as pa
import pyarrow.compute as pc
from rich.live import Live

from actors.state import State
from bus import Bus, BusError, NotFound, query

from .cli_bus import console, print_table, rich_table
from .display import clean, clean_document
from .errors import UserError
from .grading import grade_of
from .job import load_job
from .lease import driver_gone_since
from .progress import InFlight, in_flight


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


def _paper_score(events: pa.Table) -> float | None:
    """The last PaperBench score recorded in a project's ``events`` (``paper_graded``), or None."""
    graded = [r for r in events.filter(pc.equal(events.column("kind"), "paper_graded"))
              .column("metrics").to_pylist()]
    return dict(graded[-1] or []).get("score") if graded else None


def _ids(ids: list[str], shown: int = 3) -> str:
    return ", ".join(ids[:shown]) + (f" (+{len(ids) - shown})" if len(ids) > shown else "")


def status_table(bus: Bus, names: list[str], waiting: list[str] = ()) -> pa.Table:
    """One row per project of ``names``, then one per sweep member in ``waiting`` (not
    started yet: no project on the bus)."""
    rows, now = [], time.time()
    for name in names:
        try:
            events = bus.project(name).events()
        except BusError as e:  # one damaged project does not hide the others
            rows.append({"project": name, "state": f"damaged: {str(e)[:200]}", "steps": None, "under way": "",
                         "queued": "", "runs": "", "best cv": None, "tokens": None, "last event": "", "score": None,
                         "medal": ""})
            continue
        try:
            config = load_job(bus, name).orchestrator
        except NotFound:
            config = None  # not made by `aisci run` (a sweep's own project, a demo): no runs to rank
        state = State.from_events(events, config)
        last = events.column("time")[-1].as_py().timestamp() if events.num_rows else now
        grade = grade_of(bus, name)
        paper = _paper_score(events) if grade is None else None  # a paper project's: PaperBench's score
        stands = where_it_stands(bus, name, state)
        kinds = set(events.column("kind").to_pylist()) if config is not None and config.track == "paper" else set()
        if kinds and state.stopped and not state.failed and "paper_ended" not in kinds:  # its end: not done yet
            stands = (f"stopped; its end (reproduction, grade) was cut: aisci resume {name}"
                      if driver_gone_since(bus, name) is not None else "ending: its reproduction and grade")
        # Work in flight is under way or queued only while a driver runs the project: an
        # interrupted, paused or ended one has none (what was in flight is redone on resume).
        work = in_flight(events, state) if stands.startswith(("running", "pausing")) else InFlight([], [])
        rows.append({"project": name, "state": stands, "steps": state.steps,
                     "under way": _ids(work.running), "queued": _ids(work.queued),
                     "runs": state.runs_said(),
                     "best cv": round(state.best_run.cv_score, 5) if state.best_run else None, "tokens": state.tokens,
                     "last event": f"{now - last:.0f} s ago", "score": grade.score if grade else paper,
                     "medal": grade.medal if grade else ("(paper)" if paper is not None else "") + (
                         " disqualified (blacklist)" if "blacklist_hit" in kinds else "")})
    for name in waiting:
        rows.append({"project": name, "state": "waiting: not started yet (a sweep runs max_concurrent at once)"})
    return pa.Table.from_pylist(rows) if rows else pa.table({"project": pa.array([], pa.string())})


def cmd_status(bus: Bus, args: argparse.Namespace) -> None:
    waiting: list[str] = []
    if args.sweep:
        from .sweep import members  # Ray and the models: only for a sweep's status

        names, started = [m["project"] for m in members(bus, args.sweep)], set(bus.projects())
        waiting = [n for n in names if n not in started]  # no project yet: the sweep has not started them
        names = [n for n in names if n in started]
    elif args.project:
        names = [bus.project(args.project).name]  # an unknown project: one line (NotFound)
    else:
        names = [p for p in bus.projects() if not p.startswith("sweep-")]
    title = f"projects on {bus.root}" + (f" (sweep {args.sweep})" if args.sweep else "")
    if not names and not waiting and not args.watch:  # a new or mistyped root: said, not an empty table
        console.print(f"No projects under {bus.root}. Start one with `aisci run` (or `aisci demo`); --root and "
                      "AISCI_ROOT choose the bus", markup=False, highlight=False)
        return
    if not args.watch:
        print_table(status_table(bus, names, waiting), title=title)
        return
    # Ctrl-C is the watch's only end, so it is listened to even where the shell started us
    # with SIGINT ignored (a background job's children inherit that; `run` installs its own).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with Live(console=console, refresh_per_second=1) as live:
            while True:
                table = status_table(bus, names, waiting)
                live.update(rich_table(table, title=f"{title} - {time.strftime('%H:%M:%S')}"))
                time.sleep(args.watch)
    except KeyboardInterrupt:  # Ctrl-C is how a watch ends: the last table stays on screen
        return


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
        # Where it stands, and what shows its work now (a paused project's runs were not
        # in "no report yet": the breaker took it for lost work).
        stands = where_it_stands(bus, args.project, State.from_events(view.project.events()))
        console.print(f"{args.project} has no report yet: it is written when the project ends, and it is "
                      f"{stands}; `aisci status {args.project}` shows its runs now", highlight=False, markup=False)
        return
    # The writer's document: printed as written (no markup, no wrapping: rich wraps long
    # words in quadratic time), its control characters shown, never sent to the terminal.
    console.out(clean_document(view.read("report/report.md")), highlight=False)


def cmd_pause(bus: Bus, args: argparse.Namespace) -> None:
    """Record the request (the orchestrator reads it at its next step); a project that
    is not running is told in one line, and nothing is written."""
    state = State.from_events(bus.project(args.project).events())
    name = args.project
    if state.stopped:
        raise UserError(f"{name} has finished ({clean(state.stopped, 200)}): nothing to pause; `aisci report {name}` "
                        "shows how it went")
    if state.failed:
        raise UserError(f"{name} failed ({clean(state.failed, 200)}): nothing runs; fix the cause, then "
                        f"`aisci resume {name}`")
    if state.paused:
        raise UserError(f"{name} is paused already; `aisci resume {name}` continues it")
    bus.project(name).as_role("system", "cli").record("pause_requested", args.reason)
    print(f"asked {args.project} to pause; its orchestrator stops dispatching at its next step "
          f"(`aisci resume {args.project}` continues)")
