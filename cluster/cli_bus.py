"""``aisci bus ...`` and ``aisci demo``: look at and maintain the File-as-Bus from a
terminal (the parser is ``cluster.cli``); ``open_bus``: the bus every command works on."""

from __future__ import annotations

import argparse
import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table
from rich.text import Text

from actors import memory
from bus import Bus, query
from bus.reground import workspace_map
from bus.repair import repair
from bus.scopes import scope_for

from . import demo
from .display import clean
from .errors import UserError

console = Console(emoji=False)  # ':smile:' in a summary stays as written
if not console.is_terminal:  # piped to a file or a CI log: don't fold at 80 columns
    console = Console(width=160, emoji=False)


def open_bus(root: str | None) -> Bus:
    """The bus at ``root`` (None: ``$AISCI_ROOT``, else ``~/.aisci``). Raises ``UserError``."""
    try:
        return Bus(root)
    except OSError as e:  # read-only, not ours, not there and not creatable
        where = root or e.filename or "the default root"
        why = f"{e.filename}: {e.strerror}" if e.filename and str(e.filename) != str(root) else e.strerror
        raise UserError(f"cannot use {where} as the bus root ({why}): give a folder you can "
                        "write (--root DIR or AISCI_ROOT)") from None


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):  # a metrics map arrives as [(name, value), ...]
        return ", ".join(f"{v[0]}={_cell(v[1])}" if isinstance(v, tuple) else _cell(v) for v in value)
    return str(value)


def rich_table(table: pa.Table, title: str | None = None, limit: int = 200) -> Table:
    """Every cell is inert text (``cluster.display.clean``: never markup, cut to 300
    characters): most of what a table shows was written by agents."""
    out = Table(title=Text(clean(title, 500)) if title else None)
    for name in table.column_names:
        out.add_column(Text(clean(name)), overflow="fold")
    for row in table.slice(max(table.num_rows - limit, 0)).to_pylist():
        out.add_row(*(Text(clean(_cell(v))) for v in row.values()))
    return out


def print_table(table: pa.Table, title: str | None = None, limit: int = 200) -> None:
    """Render an Arrow table with Rich (the last ``limit`` rows; times in UTC)."""
    console.print(rich_table(table, title, limit))
    if table.num_rows > limit:
        console.print(f"[dim](showing the last {limit} of {table.num_rows} rows; use --limit)[/dim]")


def cmd_demo(bus: Bus, args: argparse.Namespace) -> None:
    demo.run(bus)


def cmd_ls(bus: Bus, args: argparse.Namespace) -> None:
    names = bus.projects()
    if not names:
        console.print(f"No projects under {bus.root}. Create one with `aisci demo` or `aisci run`.")
        return
    table = bus.index.scan(names, columns=["project", "seq", "time", "kind"])
    stats = table.group_by("project").aggregate([("seq", "count"), ("time", "max")])
    writes = table.filter(pc.is_in(table.column("kind"), pa.array(["write", "append"])))
    wstats = writes.group_by("project").aggregate([("kind", "count")])
    joined = pa.table({"project": pa.array(names)}).join(stats, "project").join(wstats, "project")
    joined = joined.rename_columns(
        {"seq_count": "events", "time_max": "last event", "kind_count": "file writes"}
    ).sort_by("project")
    print_table(joined.select(["project", "events", "file writes", "last event"]), title=f"projects on {bus.root}")


def cmd_log(bus: Bus, args: argparse.Namespace) -> None:
    table = query.events(bus, args.project, since=args.since, kinds=args.kind or None)
    if args.kind and table.num_rows == 0:
        seen = sorted(set(query.events(bus, args.project).column("kind").to_pylist()))
        unknown = [k for k in args.kind if k not in seen]
        if unknown:
            raise UserError(f"{args.project} has no events of kind {', '.join(unknown)}; its kinds: {', '.join(seen)}")
    cols = ["seq", "time", "role", "instance", "kind", "path", "version", "size", "summary", "metrics"]
    print_table(table.select(cols), title=f"events of {args.project}", limit=args.limit)


def cmd_query(bus: Bus, args: argparse.Namespace) -> None:
    if args.what == "best":
        best = query.best_metric(bus, args.metric, args.mode)
        if best.num_rows == 0:  # a misspelt metric was an empty table and exit 0
            names = sorted({k for m in bus.index.scan(None, columns=["metrics"]).column("metrics").to_pylist()
                            for k, _ in (m or [])})
            raise UserError(f"no event on this bus has the metric {args.metric!r}; the metrics there: "
                            + (", ".join(names[:30]) or "none yet"))
        print_table(best, title=f"best {args.metric} per project ("
                    f"{'each by its metric' if args.mode == 'task' else args.mode})")
    elif args.what == "tokens":
        projects = [bus.project(args.project).name] if args.project else None  # an unknown project: NotFound
        print_table(query.tokens_by_role(bus, projects), title="tokens per project, role and model: each model call "
                    "once; cached = prompt tokens a prefix cache served")
    elif args.what == "files":
        print_table(query.latest_files(bus, args.project).drop_columns(["hash"]), title=f"files of {args.project}")
    elif args.what == "prior":
        prior = memory.prior_of(bus, bus.project(args.project).name)  # an unknown project: NotFound
        if prior is None:
            raise UserError(f"{args.project} has no task profile (it was made before memory across projects, or "
                            "not by `aisci run`): nothing to compare it with")
        print_table(pa.Table.from_pylist([q.model_dump(exclude={"failed"}) | {"not ok": str(q.failed or "")}
                                          for q in prior.projects]) if prior.projects else pa.table({"project": []}),
                    title=f"projects like {args.project} ({prior.profile.key}), nearest first")
        if prior.runs:
            print_table(pa.Table.from_pylist([r.model_dump(include={"project", "run", "score", "rank", "of", "command"})
                                              for r in prior.runs]), title="their best runs (commands: data from models)")
    elif args.what == "map":
        table = workspace_map(bus.project(args.project).events(), scope_for(args.role))
        print_table(table.drop_columns(["hash"]), title=f"what '{args.role}' sees in {args.project}")


def cmd_compact(bus: Bus, args: argparse.Namespace) -> None:
    for name in [bus.project(args.project).name] if args.project else bus.index.projects():  # unknown: NotFound
        rows = bus.index.compact(name)
        console.print(f"{name}: compacted {rows} journal rows")


def cmd_repair(bus: Bus, args: argparse.Namespace) -> None:
    if args.project:
        bus.project(args.project)  # an unknown project: one line (NotFound), and nothing written for it
    for name in [args.project] if args.project else bus.projects():
        r = repair(bus, name)
        console.print(f"{name}: consistent" if r.clean else f"[bold]{name}[/bold]: repaired", markup=True)
        for line in r.lines():  # every thing repair found or did, including on a consistent project
            style = "yellow" if line.startswith(("LOST", "bad record", "indexed but missing", "left alone",
                                                  "not UTF-8")) else ""
            console.print(Text("  " + clean(line, 1000), style=style), highlight=False)  # lines name agents' paths
