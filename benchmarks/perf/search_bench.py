"""Figures for the search over the solution tree, with the built-in baseline (no model):

    python -m benchmarks.perf.search_bench [--tasks breast-cancer,diabetes] [--budget 600] [--no-branches]

For each shipped task, on the embedded local Ray:

1. flat (one grid of runs, the baseline before the tree) vs tree search (2 branches)
   at the same wall-clock budget: the grade, the medal, the runs, the wall time and
   the champion (the best run by cv: ``ensemble-<n>`` when an ensemble node won);
2. the tree with ``--branches 1`` vs ``4``: the wall time each took to reach the same
   cv score (the worse of the two final bests, so that both reach it), read from the
   bus (the time of the run that first reached it, from the job's start); left out
   with ``--no-branches``.

Last line: ``search_bench tasks=<n> flat=<medals> tree=<medals> b1_s=<...> b4_s=<...>``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile

from actors.score import Score
from benchmarks.mlebench.task import shipped_tasks
from bus import Bus
from cluster.run import connect, make_job, run_job


def _run(bus: Bus, task: str, project: str, budget_s: float, search: str, branches: int = 2):
    job = make_job(task, project, budget_s=budget_s, agents=max(2, branches), branches=branches, search=search)
    out = run_job(bus, job, quiet=True)
    events = bus.project(project).events().to_pylist()
    runs = [e for e in events if e["kind"] == "experiment"]
    return out, runs, events


def _time_to(events: list[dict], runs: list[dict], score: float, lower: bool) -> float | None:
    """Seconds from the job's start to the first run whose cv score reaches ``score``."""
    start = min(e["time"].timestamp() for e in events if e["kind"] in ("started", "decision"))
    for r in runs:
        value = dict(r["metrics"] or []).get("cv_score")
        if r["status"] == "ok" and value is not None and Score(value, lower).reaches(score):
            return r["time"].timestamp() - start
    return None


def _champion(runs: list[dict], lower: bool) -> str:
    """The best run by cv (an ``ensemble-<n>`` when an ensemble node won)."""
    scored = [(Score(v, lower), r["run"]) for r in runs if r["status"] == "ok"
              and (v := dict(r["metrics"] or []).get("cv_score")) is not None]
    return max(scored, key=lambda s: s[0])[1] if scored else "-"


def _best(runs: list[dict], lower: bool) -> float | None:
    scores = [Score(v, lower) for r in runs if r["status"] == "ok"
              and (v := dict(r["metrics"] or []).get("cv_score")) is not None]
    return max(scores).value if scores else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default=",".join(shipped_tasks()))
    ap.add_argument("--budget", type=float, default=600.0, help="wall-clock budget of each project, seconds")
    ap.add_argument("--no-branches", action="store_true", help="flat vs tree only (half the projects)")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="search_bench-")
    try:
        connect()
        bus = Bus(root)
        tasks = shipped_tasks()
        table, speed = [], []
        for name in args.tasks.split(","):
            task = str(tasks[name])
            for label, search in (("flat", "grid"), ("tree", "tree")):
                out, runs, _ = _run(bus, task, f"{name}-{label}", args.budget, search)
                cv = _best(runs, out.grade.is_lower_better)
                champion = _champion(runs, out.grade.is_lower_better)
                table.append((name, label, out, len(runs), cv, champion))
                print(f"{name} {label}: {out.grade.score} {out.grade.medal} cv={cv} runs={len(runs)} "
                      f"wall={out.wall_s:.1f}s champion={champion}", flush=True)
            if args.no_branches:
                continue
            lower = table[-1][2].grade.is_lower_better
            b = {n: _run(bus, task, f"{name}-b{n}", args.budget, "tree", branches=n) for n in (1, 4)}
            finals = [_best(b[n][1], lower) for n in (1, 4)]
            same = min((Score(f, lower) for f in finals if f is not None), default=None)
            times = {n: _time_to(b[n][2], b[n][1], same.value, lower) if same else None for n in (1, 4)}
            speed.append((name, same.value if same else None, times, {n: b[n][0].wall_s for n in (1, 4)},
                          {n: len(b[n][1]) for n in (1, 4)}))
            print(f"{name} branches: to {same.value if same else '-'}: 1 -> {times[1]}, 4 -> {times[4]}", flush=True)
        print(f"\nflat vs tree, {args.budget:.0f} s budget each (baseline, embedded Ray)")
        print("task            search  score       medal    best cv     runs  wall s  champion")
        for name, label, out, n, cv, champion in table:
            print(f"{name:15s} {label:6s}  {out.grade.score!s:10.10s}  {out.grade.medal:7s}  {cv!s:10.10s}  {n:4d}  "
                  f"{out.wall_s:6.1f}  {champion}")
        print("\nbranches 1 vs 4: wall time to the same cv score (and the whole search's wall time, runs)")
        print("task            score       b1 to it  b4 to it  b1 wall  b4 wall  b1 runs  b4 runs")
        for name, score, t, wall, n in speed:
            fmt = lambda v: f"{v:8.1f}" if v is not None else "       -"  # noqa: E731
            print(f"{name:15s} {score!s:10.10s}  {fmt(t[1])}  {fmt(t[4])}  {wall[1]:7.1f}  {wall[4]:7.1f}  "
                  f"{n[1]:7d}  {n[4]:7d}")
        medals = lambda label: ",".join(o.grade.medal for _, lab, o, _, _, _ in table if lab == label)  # noqa: E731
        print(f"search_bench tasks={len(speed)} flat={medals('flat')} tree={medals('tree')} "
              f"b1_s={','.join(f'{s[2][1]:.1f}' if s[2][1] is not None else '-' for s in speed)} "
              f"b4_s={','.join(f'{s[2][4]:.1f}' if s[2][4] is not None else '-' for s in speed)}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
