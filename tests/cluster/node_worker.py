"""A two-node Ray cluster (``ray.cluster_utils.Cluster``) that loses its worker node in
the middle of an experiment (``tests/cluster/test_nodes.py`` runs this in its own
process: a test session has one Ray connection, and this needs a cluster of its own).

    python -m tests.cluster.node_worker ROOT [run|project]

``run``: one experiment (``cluster.scheduler.run_batch``); ``project``: a whole scripted
project (``cluster.run.run_job``), whose orchestrator and agents may be on either node.

The worker node is drained with Ray's preemption reason (which the orchestrator's
pause hook must see), then removed. Prints one JSON line: what the drain looked like,
the run's result and the run's events.
"""

from __future__ import annotations

import json
import sys
import time

import ray
from ray.cluster_utils import Cluster
from ray.core.generated import autoscaler_pb2

from actors.orchestrator_actor import draining_nodes
from actors.runs import make_spec
from benchmarks.mlebench.task import shipped_tasks
from bus import Bus
from cluster.run import make_job, run_job
from cluster.scheduler import run_batch

COMMAND = ("python3 -c \"import json, time; time.sleep(4); "
           "json.dump({'cv_score': 0.9}, open('metrics.json', 'w'))\"")


@ray.remote(num_cpus=1)
class Blocker:
    def ready(self) -> bool:
        return True


def main(root: str, mode: str = "run") -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"head": 1}})
    worker = cluster.add_node(num_cpus=1, resources={"worker": 1})
    ray.init(address=cluster.address, namespace="aisci")
    bus = Bus(root)
    project = "p" if mode == "run" else "p2"
    if mode == "run":
        bus.create_project("p")
    # Hold the head's CPU so that the run lands on the worker node; let go once it runs there.
    blocker = Blocker.options(resources={"head": 0.01}).remote()
    ray.get(blocker.ready.remote())

    import threading

    out: dict = {}
    if mode == "run":
        spec = make_spec("long", COMMAND, cpus=1, memory_mb=2048, timeout_s=120)
        thread = threading.Thread(target=lambda: out.update(result=run_batch(bus.config, "p", [spec])[0].model_dump()))
    else:
        # The baseline's runs (scikit-learn, a second or more each on one CPU) are long
        # enough to be caught in the middle.
        job = make_job(str(shipped_tasks()["breast-cancer"]), "p2", budget_s=600)
        thread = threading.Thread(target=lambda: out.update(result=run_job(bus, job, quiet=True)))
    thread.start()
    while project not in bus.projects() or not any(
            e["kind"] == "experiment_start" for e in bus.project(project).events().to_pylist()):
        time.sleep(0.05)
    ray.kill(blocker)
    time.sleep(1.0 if mode == "run" else 0.3)
    gcs = ray._raylet.GcsClient(address=cluster.address)
    accepted, _ = gcs.drain_node(worker.node_id, autoscaler_pb2.DrainNodeReason.Value("DRAIN_NODE_REASON_PREEMPTION"),
                                 "spot preemption (test)", int(time.time() * 1000) + 1000)
    seen_draining = worker.node_id in draining_nodes()
    cluster.remove_node(worker)
    thread.join(timeout=120)
    events = [(e["kind"], e["summary"]) for e in bus.project(project).events().to_pylist()
              if e["kind"] in ("experiment_start", "experiment")]
    if mode == "project":
        result = out["result"]
        out["result"] = {"stop_reason": result.reason, "paused": result.paused, "grade": result.grade.model_dump() if result.grade else None}
    print(json.dumps({"drain_accepted": accepted, "result": out.get("result"), "events": events,
                      "worker": worker.node_id, "seen_draining": seen_draining}), flush=True)
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:3])
