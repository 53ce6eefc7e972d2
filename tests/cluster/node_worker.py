"""A two-node Ray cluster (``ray.cluster_utils.Cluster``) that loses its worker node in
the middle of an experiment (``tests/cluster/test_nodes.py`` runs this in its own
process: a test session has one Ray connection, and this needs a cluster of its own).

    python -m tests.cluster.node_worker ROOT

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
from bus import Bus
from cluster.experiments import RunSpec
from cluster.scheduler import run_batch

COMMAND = ("python3 -c \"import json, time; time.sleep(4); "
           "json.dump({'cv_score': 0.9, 'higher_is_better': 1}, open('metrics.json', 'w'))\"")


@ray.remote(num_cpus=1)
class Blocker:
    def ready(self) -> bool:
        return True


def main(root: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"head": 1}})
    worker = cluster.add_node(num_cpus=1, resources={"worker": 1})
    ray.init(address=cluster.address, namespace="aisci")
    bus = Bus(root)
    bus.create_project("p")
    # Hold the head's CPU so that the run lands on the worker node; let go once it runs there.
    blocker = Blocker.options(resources={"head": 0.01}).remote()
    ray.get(blocker.ready.remote())

    import threading

    out: dict = {}
    spec = RunSpec(name="long", command=COMMAND, cpus=1, memory_mb=2048, timeout_s=120)
    thread = threading.Thread(target=lambda: out.update(result=run_batch(bus.config, "p", [spec])[0]))
    thread.start()
    while not any(e["kind"] == "experiment_start" for e in bus.project("p").events().to_pylist()):
        time.sleep(0.1)
    ray.kill(blocker)
    time.sleep(1.0)
    gcs = ray._raylet.GcsClient(address=cluster.address)
    accepted, _ = gcs.drain_node(worker.node_id, autoscaler_pb2.DrainNodeReason.Value("DRAIN_NODE_REASON_PREEMPTION"),
                                 "spot preemption (test)", int(time.time() * 1000) + 1000)
    seen_draining = worker.node_id in draining_nodes()
    cluster.remove_node(worker)
    thread.join(timeout=120)
    events = [(e["kind"], e["summary"]) for e in bus.project("p").events().to_pylist()
              if e["kind"] in ("experiment_start", "experiment")]
    print(json.dumps({"drain_accepted": accepted, "result": out.get("result"), "events": events,
                      "worker": worker.node_id, "seen_draining": seen_draining}), flush=True)
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
