"""A project's report: what was tried, what worked, the final grade, and a plot of the
best metric over the orchestrator's steps (SVG, no plotting library needed)."""

from __future__ import annotations

import datetime as dt

from bus import Project


def _svg(points: list[tuple[float, float]], label: str) -> str:
    w, h, pad = 480, 240, 40
    if not points:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}"><text x="10" y="20">no {label} yet</text></svg>'
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs) or 1, min(ys), max(ys)
    sx = lambda x: pad + (x - x0) / ((x1 - x0) or 1) * (w - 2 * pad)  # noqa: E731
    sy = lambda y: h - pad - (y - y0) / ((y1 - y0) or 1) * (h - 2 * pad)  # noqa: E731
    line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    dots = "".join(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3"/>' for x, y in points)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">'
            f'<polyline fill="none" stroke="steelblue" stroke-width="2" points="{line}"/>{dots}'
            f'<text x="{pad}" y="15">{label} by experiment (seconds since the first)</text>'
            f'<text x="5" y="{sy(y1) + 4:.0f}">{y1:.4g}</text><text x="5" y="{sy(y0) + 4:.0f}">{y0:.4g}</text>'
            f'<text x="{w - pad - 20}" y="{h - 10}">{x1:.0f} s</text></svg>')


def write_report(project: Project, grade: dict | None) -> str:
    """Write report/report.md and report/metric.svg (as the writer role); returns the markdown."""
    events = project.events().to_pylist()
    runs = [e for e in events if e["kind"] == "experiment"]
    t0 = runs[0]["time"] if runs else None
    points = [((e["time"] - t0).total_seconds(), dict(e["metrics"] or []).get("cv_score"))
              for e in runs if dict(e["metrics"] or []).get("cv_score") is not None]
    decisions = [e for e in events if e["kind"] == "decision"]
    lines = [f"# Report: {project.name}", "",
             f"Written {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC from the bus ({len(events)} events).", ""]
    if grade:
        lines += ["## Grade", "", f"- score: **{grade['score']}** ({'valid' if grade['valid'] else 'invalid: ' + grade['reason']})",
                  f"- medal: **{grade['medal']}**; above median: {grade['above_median']}",
                  f"- thresholds: gold {grade['gold_threshold']}, silver {grade['silver_threshold']}, "
                  f"bronze {grade['bronze_threshold']}, median {grade['median_threshold']} "
                  f"({'lower' if grade['lower_is_better'] else 'higher'} is better; {grade['leaderboard_size']} teams)", ""]
    lines += ["## Decisions", ""] + [f"{i + 1}. {d['summary']}" for i, d in enumerate(decisions)] + [""]
    lines += ["## Experiments", "", "| run | result | cv score |", "|---|---|---|"]
    for e in runs:
        m = dict(e["metrics"] or [])
        lines.append(f"| {e['run']} | {e['status']} in {m.get('duration_s', 0):.1f} s | {m.get('cv_score', '-')} |")
    lines += ["", "![best metric over time](metric.svg)", ""]
    text = "\n".join(lines)
    writer = project.as_role("system", "report")
    writer.write("report/metric.svg", _svg(points, "cv score"), summary="cv score of each experiment over time")
    writer.write("report/report.md", text, summary="final report" + (f": {grade['medal']} medal" if grade else ""))
    return text
