"""How soon a run asked for inside a subtask starts (docs/orchestrator.md, "Runs start
inside a subtask"): the orchestrator's watcher (``actors.run_dispatch``) against the
bus, the cluster's run queue and Ray, with a trivial run (``true``).

    python -m benchmarks.perf.run_dispatch_bench [--runs 10]

One experimenter subtask launches ``--runs`` runs one after the other, each followed by
``wait_for_runs`` on it (a local Ray cluster of 2 CPUs of its own, unsandboxed runs,
the scripted model). Per run, from its ``run_requested`` event: to its ``dispatch``
event (the watcher's poll), to its ``experiment_start`` (the run queue, Ray, the
runner) and to its result. Last line:
``run_dispatch_bench runs=<n> dispatch_p50_ms=<x> dispatch_p95_ms=<y> start_p50_ms=... end_p50_ms=...``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import tempfile

import ray

from actors.agent import Agent
from actors.llm.scripted import ScriptedLLM, reply
from actors.llm_policy import LLMPolicy
from actors.orchestrator import Orchestrator, OrchestratorConfig
from actors.runs import RunPolicy
from bus import Bus, BusConfig
from cluster.scheduler import run_batch


def _percentiles(ms: list[float]) -> tuple[float, float]:
    ms = sorted(ms)
    return statistics.median(ms), ms[int(0.95 * (len(ms) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="run_dispatch_bench-")
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="run-dispatch-bench")
    try:
        bus = Bus(config=BusConfig(root=root))
        proj = bus.create_project("bench")
        proj.as_role("system").write("task/description.md", "A benchmark.", summary="the task")
        steps = []
        for i in range(args.runs):
            steps.append(reply(calls=[("launch_experiment", {"name": f"r{i}", "command": "true", "timeout_s": 60})]))
            steps.append(reply(calls=[("wait_for_runs", {"runs": [f"r{i}"], "timeout_s": 120})]))
        steps.append(reply(calls=[("finish", {"summary": "done"})]))
        agent = Agent(bus, ScriptedLLM({"experimenter-1": steps}))
        decisions = [reply(text=json.dumps({"action": a, "role": r, "goal": "bench", "reason": "bench"}))
                     for a, r in (("dispatch", "experimenter"), ("stop", None))]
        config = OrchestratorConfig(project="bench", policy="llm", budget_s=3600, max_tokens=10**9)
        Orchestrator(bus, config, LLMPolicy(bus, ScriptedLLM({"orchestrator": decisions})),
                     lambda subs: [agent.run("bench", s) for s in subs],
                     functools.partial(run_batch, bus.config, "bench"),
                     run_policy=RunPolicy(sandbox="none", memory_mb=256, tmp_mb=16)).run()
        times: dict[str, dict[str, float]] = {}
        for e in proj.events().to_pylist():
            if e["run"] and e["kind"] in ("run_requested", "dispatch", "experiment_start", "experiment"):
                times.setdefault(e["run"], {}).setdefault(e["kind"], e["time"].timestamp())
        since = {k: [(t[k] - t["run_requested"]) * 1000 for t in times.values() if k in t]
                 for k in ("dispatch", "experiment_start", "experiment")}
        if len(since["experiment"]) != args.runs:
            raise SystemExit(f"only {len(since['experiment'])} of {args.runs} runs ended")
        (d50, d95), (s50, s95), (e50, e95) = (_percentiles(since[k]) for k in since)
        print(f"{args.runs} runs asked for inside one subtask, from the request: dispatched p50 {d50:.0f} ms, "
              f"p95 {d95:.0f} ms; started p50 {s50:.0f} ms, p95 {s95:.0f} ms; ended p50 {e50:.0f} ms, p95 {e95:.0f} ms "
              f"(load average {os.getloadavg()[0]:.2f})")
        print(f"run_dispatch_bench runs={args.runs} dispatch_p50_ms={d50:.0f} dispatch_p95_ms={d95:.0f} "
              f"start_p50_ms={s50:.0f} start_p95_ms={s95:.0f} end_p50_ms={e50:.0f} end_p95_ms={e95:.0f}")
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
