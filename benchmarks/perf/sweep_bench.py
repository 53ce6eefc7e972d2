"""How long a run waits for resources in a sweep, with and without the run queue:

    python -m benchmarks.perf.sweep_bench [--projects 10] [--cpus 2]

N scripted projects at once on one embedded Ray (``--cpus`` CPUs), each with its own
Orchestrator actor, sharing 4 agent actors and one scripted model
(``benchmarks.perf.scripted_project``, with batches of unequal size as in a real sweep:
project i asks for 2, 5 or 8 runs (i mod 3) of ~0.5 s, each for one CPU). A run's wait
is from its ``dispatch`` event (the orchestrator sends it) to its ``experiment_start``
event (its code begins), both on the bus; a project's first run is overtaken by each
run of another project dispatched after it and started before it. Twice on the same
cluster: first the old way (``queue=False``: CPU runs straight to Ray, in Ray's
order), then through the run queue (``cluster.admission``), after a warm-up of two
projects that neither pays. Figures per way: max and
p95 wait over all runs, the max wait of the projects' first runs, the most times a
project's first run was overtaken, wall time. Last line:
``sweep_bench projects=N max_wait_ratio=<old/new> p95_wait_ratio=<old/new> overtaken=<old>/<new>``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import ray

from actors.llm.config import LLMConfig
from actors.llm.scripted import reply
from actors.pool import AgentPool
from benchmarks.mlebench.task import shipped_tasks
from benchmarks.perf.scale_bench import pct, scripted_job
from benchmarks.perf.scripted_project import script
from bus import Bus
from cluster.run import prepare, start_orchestrator


def batch_config(i: int) -> LLMConfig:
    """The scripted project, its experiment step asking for 2, 5 or 8 runs (by i mod 3)."""
    steps = script()
    launches = [("launch_experiment", {"name": f"r{k}", "command": f"sleep 0.5 && python3 ../../code/train.py "
                                       f"{1 + k / 10}", "timeout_s": 120}) for k in range(2 + 3 * (i % 3))]
    steps["experiment-1"] = [reply(calls=launches), *steps["experiment-1"][1:]]
    steps["submit-1"] = [reply(calls=[("copy_file", {"src": "experiments/r1/submission.csv",
                                                     "dst": "submission/submission.csv", "summary": "r1"})]),
                         *steps["submit-1"][1:]]
    return LLMConfig(backend="scripted", script={k: [r.model_dump() for r in v] for k, v in steps.items()},
                     script_by_step=True)


def timings(bus: Bus, project: str) -> list[tuple[float, float]]:
    """(dispatched, started) of each run, seconds since the epoch."""
    sent, out = {}, []
    for e in bus.project(project).events().to_pylist():
        if e["kind"] == "dispatch" and e["run"]:
            sent[e["run"]] = e["time"].timestamp()
        elif e["kind"] == "experiment_start" and e["run"] in sent:
            out.append((sent[e["run"]], e["time"].timestamp()))
    return out


def sweep(root: str, n: int, queue: bool) -> dict:
    bus = Bus(root)
    task = str(shipped_tasks()["breast-cancer"])
    jobs = [scripted_job(task, f"sw-{i:03d}") for i in range(n)]
    pools = {}
    for i, job in enumerate(jobs):
        job.llm = batch_config(i)
        pools[i % 3] = pools.get(i % 3) or AgentPool(2, bus.config, job.llm)
    t0 = time.perf_counter()
    refs, actors = [], []
    for job in jobs:
        prepare(bus, job)
        actors.append(start_orchestrator(bus, job, pools[len(actors) % 3], queue=queue))
        refs.append(actors[-1].run.remote())
    outcomes = ray.get(refs)
    wall = time.perf_counter() - t0
    for actor in actors:
        ray.kill(actor)
    bad = [o.reason for o in outcomes if "submission: submission/submission.csv is in place" not in o.reason]
    if bad:
        raise RuntimeError(f"{len(bad)} of {n} projects did not finish: {bad[:3]}")
    runs = [(i, d, s) for i, j in enumerate(jobs) for d, s in timings(bus, j.project)]
    every = [s - d for _, d, s in runs]
    # A batch's first run, overtaken by runs of other projects dispatched after it (the
    # issue's symptom; a batch's later runs are meant to let other projects' first ones by).
    firsts = [min((r for r in runs if r[0] == i), key=lambda r: r[1:]) for i in range(n)]
    overtaken = max(sum(j != i and d2 > d and s2 < s for j, d2, s2 in runs) for i, d, s in firsts)
    return {"max": max(every), "p95": pct(every, 0.95), "p50": pct(every, 0.5), "overtaken": overtaken,
            "first_max": max(s - d for _, d, s in firsts),
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
        print("way           runs  p50 wait  p95 wait  max wait  first runs' max wait  most overtaken  wall s")
        sweep(roots[2], 2, True)  # warm-up (Ray's workers for runs), not reported: neither way pays it
        rows = {}
        for way, queue, root in (("ray's order", False, roots[0]), ("run queue", True, roots[1])):
            r = rows[way] = sweep(root, args.projects, queue)
            print(f"{way:12} {r['runs']:5d} {r['p50']:9.2f} {r['p95']:9.2f} {r['max']:9.2f} {r['first_max']:21.2f} {r['overtaken']:15d} "
                  f"{r['wall']:7.1f}", flush=True)
        old, new = rows["ray's order"], rows["run queue"]
        print(f"sweep_bench projects={args.projects} max_wait_ratio={old['max'] / new['max']:.2f} "
              f"p95_wait_ratio={old['p95'] / new['p95']:.2f} first_run_max_wait_ratio={old['first_max'] / new['first_max']:.2f} "
              f"overtaken={old['overtaken']}/{new['overtaken']}")
    finally:
        ray.shutdown()
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
