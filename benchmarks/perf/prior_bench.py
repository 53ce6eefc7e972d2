"""How fast a project's prior is built (memory across projects, actors/memory.py) with
many projects on the bus:

    python -m benchmarks.perf.prior_bench [--projects 10,100,1000] [--noise 40]

For each N, a fresh bus with N synthetic finished projects, written through the real
bus API (index fsync off only to make the setup quicker) and compacted, as a long-lived
bus would be: each has a ``task_profile`` (one of 4 task classes, a random shape), 6
runs (request object, ``run_requested``, ``experiment`` result with a cv_score) and
``--noise`` other events. Then ``build_prior`` for a new project (a fresh ``Bus`` each
time: no in-process cache), median of 5 after a first query (which also builds the
index's rollup, reported apart). Last line:
``prior_bench projects=<N...> prior_ms=<median per N>``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from actors.baseline import GRIDS
from actors.memory import TaskProfile, build_prior, record_profile, similar
from actors.runs import RunResult, record_result
from bus import Bus, BusConfig

CLASSES = [TaskProfile(metric="accuracy", kind="classification", data="tabular"),
           TaskProfile(metric="roc_auc", kind="classification", data="tabular"),
           TaskProfile(metric="rmse", is_lower_better=True, kind="regression", data="tabular"),
           TaskProfile(metric="accuracy", kind="classification", data="text")]


def populate(root: Path, n: int, noise: int, rng: random.Random) -> Bus:
    bus = Bus(config=BusConfig(root=root, fsync_index=False))
    for p in range(n):
        cls = CLASSES[p % len(CLASSES)]
        profile = cls.model_copy(update={"rows": rng.randint(100, 1_000_000), "columns": rng.randint(2, 500)})
        proj = bus.create_project(f"proj-{p:04d}")
        system, agent = proj.as_role("system", "bench"), proj.as_role("experimenter", "bench")
        record_profile(system, profile)
        for e in range(noise):
            agent.record("note", f"event {e}", metrics={"x": float(e)})
        grid = GRIDS[(cls.data, cls.kind)]
        for i in range(6):
            model, params = grid[i % len(grid)]
            name = f"{model}-{i}"
            digest = proj.put_object(json.dumps({"name": name, "command": f"python3 ../../code/train.py --model "
                                                 f"{model} --params '{json.dumps(params)}'"}).encode())
            agent.record("run_requested", name, hash=digest, run=name)
            record_result(system, RunResult(id=name, status="ok" if rng.random() > 0.1 else "failed",
                                            duration_s=1.0, metrics={"cv_score": rng.random()}))
        bus.index.compact(proj.name)
    return bus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--projects", default="10,100,1000")
    ap.add_argument("--noise", type=int, default=40)
    args = ap.parse_args()
    rng = random.Random(0)
    results = []
    for n in (int(x) for x in args.projects.split(",")):
        root = Path(tempfile.mkdtemp(prefix="prior_bench-"))
        try:
            t0 = time.perf_counter()
            bus = populate(root / "bus", n, args.noise, rng)
            setup = time.perf_counter() - t0
            rows = bus.index.scan(columns=["project"]).num_rows
            me = CLASSES[0].model_copy(update={"rows": 5000, "columns": 30})
            t0 = time.perf_counter()
            build_prior(Bus(root / "bus"), "new", me)
            first = time.perf_counter() - t0
            times, sim_times = [], []
            for _ in range(5):
                t0 = time.perf_counter()
                prior = build_prior(Bus(root / "bus"), "new", me)
                times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                similar(Bus(root / "bus"), me)
                sim_times.append(time.perf_counter() - t0)
            med, sim = statistics.median(times) * 1000, statistics.median(sim_times) * 1000
            results.append((n, med))
            print(f"{n:5d} projects, {rows:7d} events (setup {setup:.0f} s): prior {med:.1f} ms "
                  f"(of which finding the similar ones {sim:.1f} ms; first query, building the rollup: "
                  f"{first * 1000:.0f} ms); drew on {len(prior.projects)} projects, {len(prior.runs)} runs", flush=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(f"prior_bench projects={','.join(str(n) for n, _ in results)} "
          f"prior_ms={','.join(f'{m:.1f}' for _, m in results)}")


if __name__ == "__main__":
    main()
