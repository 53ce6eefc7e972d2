"""A run no node can hold is a clear result after a short wait, never a wait forever
(issue 10, kind 2: `gpus: 1` on a cluster without GPUs waited forever)."""

from __future__ import annotations

import time

from actors.runs import RunPolicy, make_spec
from cluster.scheduler import run_batch, unplaceable


def test_a_run_asking_for_more_gpus_than_any_node_has_is_refused_with_the_reason(ray_cluster, bus):
    bus.create_project("place")
    policy = RunPolicy(sandbox="none", placement_wait_s=1.0)
    t0 = time.monotonic()
    [result] = run_batch(bus.config, "place", [make_spec("big", "true", policy, gpus=4, memory_mb=256)])
    assert result.status == "refused" and "no node of this cluster has 4 GPU(s)" in result.reason, result
    assert "the largest: 2 GPU" in result.reason and time.monotonic() - t0 < 30
    event = [e for e in bus.project("place").events().to_pylist() if e["kind"] == "experiment"][-1]
    assert (event["run"], event["status"]) == ("big", "refused")


def test_memory_no_node_has_is_refused_and_a_placeable_run_beside_it_runs(ray_cluster, bus):
    bus.create_project("place2")
    policy = RunPolicy(sandbox="none", placement_wait_s=0.5, max_memory_mb=10**9)
    huge = make_spec("huge", "true", policy, memory_mb=4_000_000)
    small = make_spec("small", "echo '{\"cv_score\": 0.5}' > metrics.json", policy, memory_mb=256)
    results = {r.id: r for r in run_batch(bus.config, "place2", [huge, small])}
    assert results["huge"].status == "refused" and "MB of memory" in results["huge"].reason
    assert results["small"].status == "ok" and results["small"].metrics == {"cv_score": 0.5}


def test_unplaceable_reads_the_nodes_it_is_given():
    spec = make_spec("g", "true", gpus=1, memory_mb=100)
    cpu_only = [{"Alive": True, "Resources": {"CPU": 8.0, "memory": 8e9}}]
    assert "1 GPU(s)" in unplaceable(spec, cpu_only)
    assert unplaceable(spec, cpu_only + [{"Alive": True, "Resources": {"CPU": 1.0, "GPU": 1.0, "memory": 8e9}}]) is None
    assert "1 GPU(s)" in unplaceable(spec, [{"Alive": False, "Resources": {"CPU": 1.0, "GPU": 1.0, "memory": 8e9}}])
