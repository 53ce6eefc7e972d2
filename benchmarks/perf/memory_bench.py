"""Figures for memory across projects (actors/memory.py), on the built-in baseline:

    python -m benchmarks.perf.memory_bench [--task digits] [--repeats 1] [--search tree] [--budget 1800]

On one fresh bus: the task once (``first``: nothing earlier to learn from), then per
repeat the same task as new projects with cross-project memory on and off, each
with the search asked for (``tree``: the solution tree, whose drafts the prior orders
and leads with the similar project's best run; ``grid``: the flat grid it reorders). Per
project, from its events (``bus.query.run_outcomes``): the runs asked for, the place
of the best run among them, seconds from the project's first event to its best
result and to its last result, the job's wall time, the best CV score and the grade.
Last line: ``memory_bench task=<t> on_t_best_s=<x> off_t_best_s=<y> on_runs=<a> off_runs=<b>``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile

import numpy as np

from benchmarks.mlebench.task import shipped_tasks
from bus import Bus
from bus.query import run_outcomes
from cluster.run import connect, make_job, run_job


def figures(bus: Bus, project: str, is_lower_better: bool) -> dict:
    runs = run_outcomes(bus, [project]).to_pandas()
    scored = runs[(runs["status"] == "ok") & np.isfinite(runs["score"])]
    best = scored["score"].min() if is_lower_better else scored["score"].max()
    first_best = scored[scored["score"] == best].sort_values("after_s").iloc[0]
    return {"runs": len(runs), "best_at": int(first_best["order"]), "t_best_s": float(first_best["after_s"]),
            "t_last_s": float(runs["after_s"].max()), "cv": float(best)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="digits")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--search", choices=("tree", "grid"), default="tree")
    ap.add_argument("--budget", type=float, default=1800.0, help="wall-clock budget of each project, seconds")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="memory_bench-")
    task = str(shipped_tasks()[args.task])
    try:
        connect()
        bus = Bus(root)
        rows = []

        def run(project: str, memory: bool, label: str) -> None:
            job = make_job(task, project=project, budget_s=args.budget, search=args.search)
            job.cross_project_memory = memory
            out = run_job(bus, job)
            rows.append((label, project, out, figures(bus, project, job.orchestrator.is_lower_better)))

        run(f"{args.task}-first", True, "first")
        for i in range(args.repeats):  # alternate which goes first, so load drifts hit both alike
            order = [("on", True), ("off", False)] if i % 2 == 0 else [("off", False), ("on", True)]
            for label, memory in order:
                run(f"{args.task}-{label}-{i}", memory, label)
        print(f"\n{args.search} search, {args.budget:.0f} s budget each")
        print("project              memory  runs  best at  to best s  to last run s  wall s  cv        grade")
        for label, project, out, f in rows:
            print(f"{project:20s} {label:6s} {f['runs']:5d} {f['best_at']:8d} {f['t_best_s']:10.1f} "
                  f"{f['t_last_s']:14.1f} {out.wall_s:7.1f}  {f['cv']:.5f}  {out.grade.score} {out.grade.medal}")
        med = {label: {k: statistics.median(f[k] for lab, _, _, f in rows if lab == label)
                       for k in ("t_best_s", "runs", "t_last_s")} for label in ("on", "off")}
        wall = {label: statistics.median(o.wall_s for lab, _, o, _ in rows if lab == label) for label in ("on", "off")}
        print(f"median over {args.repeats}: memory on {med['on']['runs']:.0f} runs, best after "
              f"{med['on']['t_best_s']:.1f} s, wall {wall['on']:.1f} s; off {med['off']['runs']:.0f} runs, best after "
              f"{med['off']['t_best_s']:.1f} s, wall {wall['off']:.1f} s")
        print(f"memory_bench task={args.task} search={args.search} on_t_best_s={med['on']['t_best_s']:.1f} "
              f"off_t_best_s={med['off']['t_best_s']:.1f} on_runs={med['on']['runs']:.0f} "
              f"off_runs={med['off']['runs']:.0f} on_wall_s={wall['on']:.1f} off_wall_s={wall['off']:.1f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
