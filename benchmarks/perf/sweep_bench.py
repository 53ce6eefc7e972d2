"""How long a run waits for resources in a sweep, with and without the run queue:

    python -m benchmarks.perf.sweep_bench [--projects 10] [--cpus 2]

N scripted projects at once on one embedded Ray (``--cpus`` CPUs), each with its own
Orchestrator actor, sharing 4 agent actors and one scripted model
(``benchmarks.perf.scripted_project``: 3 runs of ~50 ms per project, each asking for
one CPU). A run's wait is from its ``dispatch`` event (the orchestrator sends it) to
its ``experiment_start`` event (its code begins), both on the bus. Twice on the same
cluster: first the old way (``queue=False``: CPU runs straight to Ray, in Ray's
order), then through the run queue (``cluster.admission``), after a warm-up of two
projects that neither pays. Figures per way: max and
p95 wait over all runs, the max wait of the first project's runs, wall time. Last line:
``sweep_bench projects=N max_wait_ratio=<old/new> p95_wait_ratio=<old/new>``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import ray

from actors.pool import AgentPool
from benchmarks.mlebench.task import shipped_tasks
from benchmarks.perf.scale_bench import pct, scripted_job
from benchmarks.perf.scripted_project import scripted_config
from bus import Bus
from cluster.run import prepare, start_orchestrator


def waits(bus: Bus, project: str) -> list[float]:
    """Seconds from each run's last dispatch to its start."""
    sent, out = {}, []
    for e in bus.project(project).events().to_pylist():
        if e["kind"] == "dispatch" and e["run"]:
            sent[e["run"]] = e["time"].timestamp()
        elif e["kind"] == "experiment_start" and e["run"] in sent:
            out.append(e["time"].timestamp() - sent[e["run"]])
    return out


def sweep(root: str, n: int, queue: bool) -> dict:
    bus = Bus(root)
    pool = AgentPool(4, bus.config, scripted_config())
    task = str(shipped_tasks()["breast-cancer"])
    jobs = [scripted_job(task, f"sw-{i:03d}") for i in range(n)]
    t0 = time.perf_counter()
    refs, actors = [], []
    for job in jobs:
        prepare(bus, job)
        actors.append(start_orchestrator(bus, job, pool, queue=queue))
        refs.append(actors[-1].run.remote())
    outcomes = ray.get(refs)
    wall = time.perf_counter() - t0
    for actor in actors:
        ray.kill(actor)
    bad = [o.reason for o in outcomes if "submission: submission/submission.csv is in place" not in o.reason]
    if bad:
        raise RuntimeError(f"{len(bad)} of {n} projects did not finish: {bad[:3]}")
    per = [waits(bus, j.project) for j in jobs]
    every = [w for ws in per for w in ws]
    return {"max": max(every), "p95": pct(every, 0.95), "p50": pct(every, 0.5), "first": max(per[0]),
            "runs": len(every), "wall": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--projects", type=int, default=10)
    ap.add_argument("--cpus", type=int, default=2)
    args = ap.parse_args()
    roots = [tempfile.mkdtemp(prefix="sweep_bench-") for _ in range(3)]
    try:
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, namespace="aisci", log_to_driver=False)
        print(f"{args.projects} projects, {args.cpus} CPUs; wait = dispatch -> start of a run, seconds")
        print("way           runs  p50 wait  p95 wait  max wait  first project's max  wall s")
        sweep(roots[2], 2, True)  # warm-up (Ray's workers for runs), not reported: neither way pays it
        rows = {}
        for way, queue, root in (("ray's order", False, roots[0]), ("run queue", True, roots[1])):
            r = rows[way] = sweep(root, args.projects, queue)
            print(f"{way:12} {r['runs']:5d} {r['p50']:9.2f} {r['p95']:9.2f} {r['max']:9.2f} {r['first']:20.2f} "
                  f"{r['wall']:7.1f}", flush=True)
        old, new = rows["ray's order"], rows["run queue"]
        print(f"sweep_bench projects={args.projects} max_wait_ratio={old['max'] / new['max']:.2f} "
              f"p95_wait_ratio={old['p95'] / new['p95']:.2f} first_project_ratio={old['first'] / new['first']:.2f}")
    finally:
        ray.shutdown()
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
