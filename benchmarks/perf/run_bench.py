"""Figures for `aisci run` with the built-in baseline policy (no model):

    python -m benchmarks.perf.run_bench [--tasks digits,diabetes,breast-cancer]

For each shipped task: the grade, the medal and the wall time of a whole run on the
embedded local Ray; the orchestrator's overhead per step (re-grounding, deciding,
recording; agents and experiments excluded); and, on the first task, the same run
with bus memory off (the paper's ablation). Last line:
``run_bench tasks=<n> medals=<a,b,c> ablation_on=<score> ablation_off=<score> tick_p50_ms=<x>``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile

from benchmarks.mlebench.task import shipped_tasks
from bus import Bus
from cluster.run import connect, run_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default=",".join(shipped_tasks()))
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="run_bench-")
    try:
        connect()
        bus = Bus(root)
        tasks = shipped_tasks()
        rows, ticks = [], []
        for name in args.tasks.split(","):
            out = run_task(bus, str(tasks[name]), project=f"{name}-on", budget_s=1800)
            rows.append((name, out))
            ticks += out.tick_overhead_ms
        first = args.tasks.split(",")[0]
        off = run_task(bus, str(tasks[first]), project=f"{first}-off", budget_s=1800, bus_memory=False)
        print("\ntask            score     medal   above-median  wall s  steps")
        for name, out in rows:
            g = out.grade
            print(f"{name:15s} {g.score!s:9s} {g.medal:7s} {g.above_median!s:13s} {out.wall_s:6.1f}  {out.steps}")
        on = rows[0][1].grade
        print(f"ablation on {first}: bus memory on {on.score} ({on.medal}), "
              f"off {off.grade.score} ({off.grade.reason or off.grade.medal})")
        p50, p95 = statistics.median(ticks), sorted(ticks)[int(0.95 * (len(ticks) - 1))]
        print(f"orchestrator overhead per step (agents and experiments excluded): p50 {p50:.1f} ms, p95 {p95:.1f} ms")
        print(f"run_bench tasks={len(rows)} medals={','.join(o.grade.medal for _, o in rows)} "
              f"ablation_on={on.score} ablation_off={off.grade.score} tick_p50_ms={p50:.1f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
