"""Running a batch of experiments for one project: admitted by the cluster's run queue,
watched for a pause.

Every run waits in ``RunQueue`` (``cluster.admission``: one named actor per cluster,
round-robin between projects, GPUs included) until what it asks for is free, and only
then becomes a Ray task: Ray does not keep pending tasks in any order, and a run it
has queued starts whenever a CPU frees, even after a pause. ``run_batch`` launches a
project's runs as they are admitted and waits for all of them; while it waits it
watches the bus for a ``pause_requested``: then the runs still waiting are withdrawn
(never started; each gets a ``run_withdrawn`` event and, having no result, is
dispatched again on resume, once), and the runs already going keep the grace the driver
gives them. A run Ray could not finish (its node lost more often than its retries
allow) is a ``lost`` result on the bus, so that the orchestrator does not wait for it
forever. A run that no node of the cluster can hold (``gpus: 1`` where there is no
GPU) would wait forever too (Ray only warns that it is infeasible): it is ``refused``
with the reason once ``RunPolicy.placement_wait_s`` has passed without such a node (an
autoscaler may add one meanwhile).
"""

from __future__ import annotations

import time

import ray

from actors.orchestrator_actor import NAMESPACE
from actors.runs import RunResult, RunSpec, record_result
from bus import Bus, BusConfig

from .admission import QUEUE_NAME, RunQueue, demand_of
from .experiments import launch

__all__ = ["run_batch", "run_queue", "unplaceable", "PAUSE_POLL_S"]

PAUSE_POLL_S = 0.5  # how often a waiting batch looks for a pause on the bus


def run_queue():
    """The cluster's run queue (started by the first caller; it outlives every job)."""
    return RunQueue.options(name=QUEUE_NAME, namespace=NAMESPACE, get_if_exists=True, lifetime="detached").remote()


def _holder() -> str | None:
    """Who will own the runs: the calling actor's id (the queue takes back what it held if
    it dies or restarts), None for a driver."""
    return ray.get_runtime_context().get_actor_id()


def unplaceable(spec: RunSpec, nodes: list[dict] | None = None) -> str | None:
    """Why no alive node of the cluster can ever hold ``spec`` (None if one can)."""
    nodes = [n["Resources"] for n in (ray.nodes() if nodes is None else nodes) if n.get("Alive")]
    need = {"GPU": spec.gpus, "CPU": spec.cpus, "memory": (spec.memory_mb + spec.policy.tmp_mb) * 1024 * 1024}
    if any(all(node.get(k, 0.0) >= v for k, v in need.items() if v > 0) for node in nodes):
        return None
    short = [k for k, v in need.items() if v > 0 and max((n.get(k, 0.0) for n in nodes), default=0.0) < v]
    what = {"GPU": f"{spec.gpus:g} GPU(s)", "CPU": f"{spec.cpus:g} CPU(s)",
            "memory": f"{spec.memory_mb + spec.policy.tmp_mb} MB of memory (run + /tmp)"}
    largest = {k: max((n.get(k, 0.0) for n in nodes), default=0.0) for k in short}
    shown = ", ".join(f"{largest[k] / 2**20:.0f} MB" if k == "memory" else f"{largest[k]:g} {k}" for k in short)
    return (f"no node of this cluster has {' and '.join(what[k] for k in short) or 'these resources together'} "
            f"(the largest: {shown or 'smaller in combination'}); ask for less, or add such a node")


def _wait_placeable(specs: list[RunSpec]) -> dict[str, str]:
    """Runs no node can hold after ``placement_wait_s``: run id -> why (the rest are placeable)."""
    waiting = {s.id: s for s in specs if unplaceable(s)}
    deadline = time.monotonic() + max((s.policy.placement_wait_s for s in waiting.values()), default=0.0)
    while waiting and time.monotonic() < deadline:
        time.sleep(min(2.0, max(deadline - time.monotonic(), 0.0)))
        nodes = ray.nodes()
        waiting = {k: s for k, s in waiting.items() if unplaceable(s, nodes)}
    return {k: unplaceable(s) or "" for k, s in waiting.items()}


def run_batch(bus_config: BusConfig, project: str, specs: list[RunSpec], queue: bool = True) -> list[RunResult]:
    """Run ``specs`` as the run queue admits them; one result each, in no particular order,
    for every run that started or was refused (runs no node can hold: see above). Runs
    withdrawn at a pause have no result. ``queue=False``: the old way, for comparison
    (benchmarks/perf/sweep_bench.py): CPU-only runs straight to Ray, in Ray's order."""
    results = []
    refused = _wait_placeable(specs)
    for spec in specs:
        if spec.id in refused:
            system = Bus(config=bus_config).project(project).as_role("system", f"run-{spec.id}")
            results.append(RunResult(id=spec.id, status="refused", reason=refused[spec.id]))
            record_result(system, results[-1], gpus=spec.gpus)
    specs = [s for s in specs if s.id not in refused]
    pause = _PauseWatch(Bus(config=bus_config).project(project))
    runs = run_queue() if specs else None
    pending: dict[ray.ObjectRef, tuple[str, RunSpec]] = {}
    queued = {s.id: demand_of(s.gpus, s.cpus, (s.memory_mb + s.policy.tmp_mb) * 2**20)
              for s in specs if queue or s.gpus > 0}
    holder = _holder()
    if queued:
        ray.get(runs.enqueue.remote(project, list(queued.items()), holder))
    for spec in specs:
        if spec.id in queued:
            pending[runs.admitted.remote(project, spec.id, queued[spec.id], holder)] = ("grant", spec)
        elif (ref := _launch(bus_config, project, spec, results)) is not None:
            pending[ref] = ("run", spec)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=PAUSE_POLL_S)
        if not ready:
            if not pause.asked and pause.check():
                ray.get(runs.withdraw.remote(project))  # the waiting ones' grants come back False
            continue
        kind, spec = pending.pop(ready[0])
        if kind == "grant":
            granted = ray.get(ready[0])
            # Withdrawn, or admitted as the pause came. A grant withdrawn by another batch
            # of this project (runs started inside a subtask) is seen here as the pause too.
            if not granted or pause.check():
                if pause.check():
                    runs.release.remote(project, spec.id)
                    _withdrawn(bus_config, project, spec)
                continue
            if (run_ref := _launch(bus_config, project, spec, results)) is not None:
                pending[run_ref] = ("run", spec)
            else:
                runs.release.remote(project, spec.id)
            continue
        if queue or spec.gpus > 0:
            runs.release.remote(project, spec.id)
        try:
            results.append(RunResult.model_validate(ray.get(ready[0])))
        except ray.exceptions.RayError as e:  # not the run's code failing: Ray could not run it
            results.append(_lost(bus_config, project, spec, e))
    return results


class _PauseWatch:
    """Whether the project was asked to pause (since the batch began, or before it and
    not resumed since: the orchestrator's own check came a moment earlier)."""

    def __init__(self, proj):
        self.proj = proj
        events = proj.events()
        kinds = events.column("kind").to_pylist()
        last = {k: max((i for i, x in enumerate(kinds) if x == k), default=-1) for k in ("pause_requested", "resumed")}
        self.asked = last["pause_requested"] > last["resumed"]
        self.seq = int(events.column("seq")[-1].as_py()) if events.num_rows else 0

    def check(self) -> bool:
        if not self.asked:
            events = self.proj.events(since=self.seq)
            if events.num_rows:
                self.seq = int(events.column("seq")[-1].as_py())
                self.asked = "pause_requested" in events.column("kind").to_pylist()
        return self.asked


def _withdrawn(bus_config: BusConfig, project: str, spec: RunSpec) -> None:
    system = Bus(config=bus_config).project(project).as_role("system", f"run-{spec.id}")
    system.record("run_withdrawn", f"{spec.id}: not started (waiting for resources at the pause); "
                  "dispatched again on resume", run=spec.id)


def _launch(bus_config: BusConfig, project: str, spec: RunSpec, results: list[RunResult]) -> ray.ObjectRef | None:
    """The run as a Ray task; None, with a ``refused`` result appended and recorded, if
    Ray refuses its options (RunRequest checks Ray's rules first: this is the backstop,
    so that a value Ray will not take is the run's result, never the project's crash)."""
    try:
        return launch(bus_config, project, spec)
    except (ValueError, TypeError) as e:
        system = Bus(config=bus_config).project(project).as_role("system", f"run-{spec.id}")
        results.append(RunResult(id=spec.id, status="refused", reason=f"Ray refused the run's resources: {e}"))
        record_result(system, results[-1], gpus=spec.gpus)
        return None


def _lost(bus_config: BusConfig, project: str, spec: RunSpec, error: Exception) -> RunResult:
    system = Bus(config=bus_config).project(project).as_role("system", f"run-{spec.id}")
    why = f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
    result = RunResult(id=spec.id, status="lost", reason=f"Ray could not finish it: {why}")
    record_result(system, result, gpus=spec.gpus)
    return result
