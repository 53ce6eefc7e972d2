"""A project's report, written from the bus at its end: how it ended (the stop reason,
pauses and resumes), the grade with the metric's direction, every decision, every run
with its score, the failed runs with the tail of their output, a plot of the runs'
scores with the best so far, and the solution tree (``report/tree.svg``: each node
coloured by its score, the champion's path, and the best score over time).

The plot is drawn by matplotlib (docs/libraries.md says why a library and not our own
SVG); it is written as ``report/metric.svg`` beside ``report/report.md``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math

from actors.state import say_runs
from actors.tree import tree_rows
from benchmarks.mlebench.report import CompetitionReport
from bus import Project

from .paper_report import paper_section

TAIL_LINES = 6  # lines of a failed run's output shown in the report
TAIL_CHARS = 800


def fmt_score(value: float | None) -> str:
    """A score rounded to 4 significant digits (0.97333 -> 0.9733, 53.1234 -> 53.12):
    enough to rank runs, no more than a metric on a few thousand rows can tell."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.4g}"


def best_so_far(scores: list[float | None], lower_is_better: bool) -> list[float | None]:
    """For each position, the best finite score up to it (None before the first)."""
    out, best = [], None
    for s in scores:
        if s is not None and math.isfinite(s) and (best is None or (s < best if lower_is_better else s > best)):
            best = s
        out.append(best)
    return out


def plot_scores(runs: list[tuple[str, float | None]], lower_is_better: bool) -> str:
    """SVG text: each run's score (labelled with its id) in the order results came,
    and the best so far as a step line. ``runs``: (run id, score or None)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render to a file
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.6))
    ax = fig.add_subplot()
    xs = list(range(1, len(runs) + 1))
    scored = [(x, s, name) for x, (name, s) in zip(xs, runs) if s is not None and math.isfinite(s)]
    if scored:
        ax.scatter([x for x, _, _ in scored], [s for _, s, _ in scored], color="tab:blue", zorder=3, label="run")
        for x, s, name in scored:
            ax.annotate(name, (x, s), textcoords="offset points", xytext=(4, 4), fontsize=7)
        best = best_so_far([s for _, s in runs], lower_is_better)
        pts = [(x, b) for x, b in zip(xs, best) if b is not None]
        ax.step([x for x, _ in pts], [b for _, b in pts], where="post", color="tab:orange", label="best so far")
        ax.legend(loc="best", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no scored run", ha="center", va="center", transform=ax.transAxes)
    direction = "lower is better" if lower_is_better else "higher is better"
    ax.set_title(f"cv score of each run ({direction})", fontsize=10)
    ax.set_xlabel("run, in the order results came")
    ax.set_ylabel("cv score")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})  # no date: the same bus, the same file
    return buf.getvalue()


def _fence(text: str) -> str:
    """Run output (untrusted text) as a code block it cannot close."""
    lines = text.replace("```", "'''").splitlines()[-TAIL_LINES:]
    return "```\n" + "\n".join(lines)[-TAIL_CHARS:] + "\n```"


def _failed_run_section(writer, runs: list[dict]) -> list[str]:
    lines: list[str] = []
    for e in runs:
        if e["status"] == "ok":
            continue
        tail = ""
        try:
            result = json.loads(writer.read(f"experiments/{e['run']}/result.json"))
            reason, tail = result.get("reason", ""), result.get("output_tail", "")
        except Exception:  # the event's summary says it too: a report is written even from a damaged folder
            reason = e["summary"]
        lines += [f"- **{e['run']}**: {e['status']}: {reason or '(no reason given)'}"]
        if tail.strip():
            lines += ["", _fence(tail), ""]
    return (["## Failed runs", ""] + lines + [""]) if lines else []


def _ending(events: list[dict]) -> list[str]:
    def at(e):
        return f"{e['time']:%Y-%m-%d %H:%M:%S}"

    lines = [f"- {at(e)} {e['kind']}: {e['summary']}" for e in events  # the first start too (the breaker)
             if e["kind"] in ("started", "pause_requested", "paused", "resumed", "failed", "stopped")]
    return (["## How it ran", ""] + lines + [""]) if lines else []


def write_report(project: Project, grade: CompetitionReport | None, lower_is_better: bool | None = None) -> str:
    """Write report/report.md and report/metric.svg (as the writer role); returns the markdown.

    ``lower_is_better`` is the task metric's direction (MLE-bench's ``is_lower_better``);
    by default the grade's."""
    if lower_is_better is None:
        lower_is_better = bool(grade and grade.is_lower_better)
    events = project.events().to_pylist()
    runs = [e for e in events if e["kind"] == "experiment"]
    scores = [(e["run"], dict(e["metrics"] or []).get("cv_score") if e["status"] == "ok" else None) for e in runs]
    best = best_so_far([s for _, s in scores], lower_is_better)[-1] if scores else None
    decisions = [e for e in events if e["kind"] == "decision"]
    direction = "lower is better" if lower_is_better else "higher is better"
    lines = [f"# Report: {project.name}", "",
             f"Written {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC from the bus ({len(events)} events). "
             f"The metric: {direction}.", ""]
    lines += _ending(events)
    if grade:
        verdict = "valid" if grade.valid_submission else "invalid: " + grade.reason
        lines += ["## Grade", "", f"- {grade.competition_id}, {grade.metric or 'score'}: **{fmt_score(grade.score)}** "
                  f"({verdict})", f"- {grade.standing}"]
        if grade.leaderboard_size:
            lines += [f"- thresholds: gold {fmt_score(grade.gold_threshold)}, silver "
                      f"{fmt_score(grade.silver_threshold)}, bronze {fmt_score(grade.bronze_threshold)}, "
                      f"median {fmt_score(grade.median_threshold)} ({grade.leaderboard_size} teams)"]
        lines += [""]
    lines += paper_section(project)  # a paper project's (aisci paper): the reproduction and its grade
    lines += ["## Decisions", ""] + [f"{i + 1}. {d['summary']}" for i, d in enumerate(decisions)] + [""]
    said = say_runs(len(runs), sum(1 for _, s in scores if s is not None))  # as status says it
    lines += ["## Experiments", "", f"Runs: {said}. Best cv score: **{fmt_score(best)}** ({direction}).", "",
              "| run | result | cv score | seconds |", "|---|---|---|---|"]
    for e, (_, score) in zip(runs, scores):
        m = dict(e["metrics"] or [])
        mark = " (best)" if score is not None and score == best else ""
        lines.append(f"| {e['run']} | {e['status']} | {fmt_score(score)}{mark} | {m.get('duration_s', 0):.1f} |")
    lines += [""]
    writer = project.as_role("system", "report")
    lines += _failed_run_section(writer, runs)
    lines += ["![each run's cv score and the best so far](metric.svg)", ""]
    tree_lines, tree_svg = _tree_section(project, events, lower_is_better)
    lines += tree_lines
    if tree_svg is not None:
        writer.write("report/tree.svg", tree_svg, summary="the solution tree and the score over time")
    text = "\n".join(lines)
    writer.write("report/metric.svg", plot_scores(scores, lower_is_better),
                 summary="cv score of each run and the best so far")
    writer.write("report/report.md", text, summary="final report" + (f": {grade.medal} medal" if grade else ""))
    return text


def plot_tree(rows: list[dict], lower_is_better: bool, started: float | None = None) -> str:
    """SVG text, two panels: the solution tree (a node per candidate, coloured by its cv
    score, a failed one as a red cross, the champion's path in bold) and the best cv
    score over wall-clock time. ``rows``: ``actors.tree.tree_rows`` of one project."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    ax, over = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    by_id = {r["node"]: r for r in rows}
    kids: dict[str | None, list[str]] = {}
    for r in rows:
        kids.setdefault(r["parent"] if r["parent"] in by_id else None, []).append(r["node"])
    pos: dict[str, tuple[float, int]] = {}

    def place(node: str, depth: int, next_x: list[float]) -> float:
        children = kids.get(node, [])
        x = sum(place(c, depth + 1, next_x) for c in children) / len(children) if children else next_x[0]
        if not children:
            next_x[0] += 1
        pos[node] = (x, depth)
        return x

    cursor = [0.0]
    for root in kids.get(None, []):
        place(root, 0, cursor)
    scored = [r for r in rows if r["score"] is not None and math.isfinite(r["score"])]
    better = (lambda a, b: a < b) if lower_is_better else (lambda a, b: a > b)
    champion = None
    for r in scored:
        if champion is None or better(r["score"], champion["score"]):
            champion = r
    path, at = set(), champion["node"] if champion else None
    while at in by_id and at not in path:
        path.add(at)
        at = by_id[at]["parent"]
    for r in rows:
        if r["parent"] in pos and r["node"] in pos:
            (x0, y0), (x1, y1) = pos[r["parent"]], pos[r["node"]]
            on = r["node"] in path and r["parent"] in path
            ax.plot([x0, x1], [y0, y1], color="tab:orange" if on else "0.75", lw=2.5 if on else 1, zorder=1)
    if scored:
        values = [r["score"] for r in scored]
        cmap = colormaps["viridis_r" if lower_is_better else "viridis"]
        norm = Normalize(min(values), max(values) if max(values) > min(values) else min(values) + 1e-9)
        points = ax.scatter([pos[r["node"]][0] for r in scored], [pos[r["node"]][1] for r in scored],
                            c=values, cmap=cmap, norm=norm, s=60, zorder=3, edgecolors="k", linewidths=0.4)
        fig.colorbar(points, ax=ax, label="cv score")
    failed = [r for r in rows if r["score"] is None and r["node"] in pos]
    if failed:
        ax.scatter([pos[r["node"]][0] for r in failed], [pos[r["node"]][1] for r in failed], marker="x",
                   color="tab:red", s=50, zorder=3, label="failed")
        ax.legend(loc="lower right", fontsize=7)
    for node, (x, y) in pos.items():
        ax.annotate(node, (x, y), textcoords="offset points", xytext=(3, 5), fontsize=6)
    ax.set_yticks(range(max((d for _, d in pos.values()), default=0) + 1))
    ax.invert_yaxis()
    ax.margins(x=0.15, y=0.15)
    ax.set_xticks([])
    ax.set_ylabel("depth (drafts at the top)")
    ax.set_title(f"solution tree: {len(rows)} nodes, champion {champion['node'] if champion else '-'} "
                 "(path in orange)", fontsize=9)
    timed = sorted((r["ended"], r["score"]) for r in scored if r.get("ended") is not None)
    if timed:
        t0 = started if started is not None else min(t for t, _ in timed)
        xs = [t - t0 for t, _ in timed]
        over.scatter(xs, [s for _, s in timed], color="tab:blue", s=12, label="node")
        best = best_so_far([s for _, s in timed], lower_is_better)
        over.step(xs, best, where="post", color="tab:orange", label="best so far")
        over.legend(loc="best", fontsize=7)
    over.set_xlabel("seconds since the start")
    over.set_ylabel("cv score")
    over.set_title("score over time", fontsize=9)
    over.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def _tree_section(project: Project, events: list[dict], lower_is_better: bool) -> tuple[list[str], str | None]:
    """The report's lines on the solution tree, and its picture (None: no tree)."""
    rows = tree_rows(project.bus, [project.name])
    if not rows:
        return [], None
    ended = {e["run"]: e["time"].timestamp() for e in events if e["kind"] == "experiment"}
    for r in rows:
        r["ended"] = ended.get(r["run"])
    starts = [e["time"].timestamp() for e in events if e["kind"] in ("started", "decision")]
    counts = {op: sum(1 for r in rows if r["operator"] == op) for op in ("draft", "improve", "debug", "ensemble")}
    lines = ["## Solution tree", "", f"{len(rows)} nodes: " + ", ".join(f"{n} {op}" for op, n in counts.items() if n)
             + ".", "", "| node | operator | parent | run | result | cv score |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['node']} | {r['operator']} | {r['parent'] or '-'} | {r['run'] or '-'} | {r['status']} | "
              f"{fmt_score(r['score'])} |" for r in rows]
    lines += ["", "![the solution tree and the score over time](tree.svg)", ""]
    return lines, plot_tree(rows, lower_is_better, min(starts) if starts else None)
