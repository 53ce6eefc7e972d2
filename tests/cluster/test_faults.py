"""Processes dying under a running project, and projects sharing the GPUs (real Ray)."""

from __future__ import annotations

import threading
import time

import ray

from actors.pool import AgentPool
from actors.state import State
from benchmarks.grading.task import shipped_tasks
from cluster.experiments import RunSpec
from cluster.run import make_job, prepare, start_orchestrator
from cluster.scheduler import gpu_share, run_batch


def _wait_for_event(bus, project, kind, prefix, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e["kind"] == kind and (e["summary"] or "").startswith(prefix)
               for e in bus.project(project).events().to_pylist()):
            return
        time.sleep(0.1)
    raise AssertionError(f"no {kind} {prefix!r}")


def test_a_killed_orchestrator_actor_is_restarted_by_ray_and_resumes_from_the_bus(ray_cluster, bus):
    job = make_job(str(shipped_tasks()["breast-cancer"]), project="orc-kill", budget_s=600)
    prepare(bus, job)
    pool = AgentPool(2, bus.config, job.llm)  # the driver owns the agent actors: keep it
    actor = start_orchestrator(bus, job, pool)
    ref = actor.run.remote()
    _wait_for_event(bus, "orc-kill", "dispatch", "implement-1")
    ray.kill(actor, no_restart=False)  # the process dies; Ray restarts the actor and re-runs run()
    out = ray.get(ref, timeout=300)
    assert out["stop_reason"].startswith("submitted"), out
    state = State.from_events(bus.project("orc-kill").events())
    assert state.dispatches["analyse-1"] == 1  # finished before the kill: not run again
    assert all(n <= 2 for n in state.dispatches.values()), state.dispatches
    ray.kill(actor)


def test_gpu_runs_are_shared_fairly_between_projects(ray_cluster, bus):
    for p in ("fair-a", "fair-b"):
        bus.create_project(p)
    spec = lambda i: RunSpec(name=f"g{i}", command="sleep 1", gpus=1, cpus=0.1, memory_mb=512)  # noqa: E731
    before = len(ray.get(gpu_share().snapshot.remote())["granted"])
    a = threading.Thread(target=run_batch, args=(bus.config, "fair-a", [spec(i) for i in range(4)]))
    a.start()
    while sum(e["kind"] == "experiment_start" for e in bus.project("fair-a").events().to_pylist()) < 2:
        time.sleep(0.05)
    b = threading.Thread(target=run_batch, args=(bus.config, "fair-b", [spec(i) for i in range(2)]))
    b.start()
    a.join(timeout=60)
    b.join(timeout=60)
    granted = [p for p in ray.get(gpu_share().snapshot.remote())["granted"][before:] if p.startswith("fair-")]
    # Arriving after a's four runs, b still gets the first GPU that frees up (first come
    # first served would make it wait for all four).
    assert granted[:2] == ["fair-a", "fair-a"] and granted[2] == "fair-b", granted
    assert sorted(granted) == ["fair-a"] * 4 + ["fair-b"] * 2
