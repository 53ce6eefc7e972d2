"""Running a batch of experiments for one project, with a fair share of the GPUs.

Ray schedules tasks in the order they arrive, so on a cluster shared by many projects
the one that asks first for twenty GPU runs would hold every GPU until its runs are
done. ``GpuShare`` (one named actor per cluster) grants GPU runs fairly: when GPUs free
up, the waiting project with the fewest GPUs in use goes first, and among those the one
that has used the fewest GPU-seconds so far (with one GPU, "in use" is 0 for everyone
at the moment it frees up: only the GPU-seconds tell the projects apart). CPU-only runs
go straight to Ray.

``run_batch`` launches a project's runs (GPU runs once granted), waits for all of them,
and turns a run Ray could not finish (its node lost more often than its retries allow)
into a ``lost`` result on the bus, so that the orchestrator does not wait for it forever.
A run that no node of the cluster can hold (``gpus: 1`` where there is no GPU) would
wait forever too (Ray only warns that it is infeasible): it is ``refused`` with the
reason once ``RunPolicy.placement_wait_s`` has passed without such a node (an
autoscaler may add one meanwhile).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter

import ray

from actors.orchestrator_actor import NAMESPACE
from actors.runs import RunResult, RunSpec, record_result
from bus import Bus, BusConfig

from .experiments import launch

SHARE_NAME = "gpu-share"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class GpuShare:
    def __init__(self):
        self.in_use: Counter = Counter()  # project -> GPUs held by its running runs
        self.used: Counter = Counter()  # project -> GPU-seconds held so far
        self.last = time.monotonic()
        self.waiting: list[tuple[int, str, float, asyncio.Future]] = []
        self.order = itertools.count()
        self.granted: list[str] = []  # projects in grant order (for tests and `aisci status`)

    async def acquire(self, project: str, gpus: float) -> None:
        self._account()
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((next(self.order), project, gpus, future))
        self._grant()
        await future

    def release(self, project: str, gpus: float) -> None:
        self._account()
        self.in_use[project] = max(self.in_use[project] - gpus, 0)
        self._grant()

    def _account(self) -> None:
        now = time.monotonic()
        for project, n in self.in_use.items():
            self.used[project] += n * (now - self.last)
        self.last = now

    def _grant(self) -> None:
        total = ray.cluster_resources().get("GPU", 0.0)
        # Fewest GPUs in use, then fewest GPU-seconds used, then first come; no
        # overtaking (a big request that does not fit yet is not starved by small ones).
        for item in sorted(self.waiting, key=lambda w: (self.in_use[w[1]], self.used[w[1]], w[0])):
            _, project, gpus, future = item
            free = total - sum(self.in_use.values())
            if gpus > free and sum(self.in_use.values()) > 0:
                break  # (a request bigger than the cluster goes to Ray, which says it is infeasible)
            self.waiting.remove(item)
            self.in_use[project] += gpus
            self.granted.append(project)
            future.set_result(None)

    def snapshot(self) -> dict:
        self._account()
        return {"in_use": dict(self.in_use), "gpu_seconds": dict(self.used), "waiting": [w[1] for w in self.waiting], "granted": list(self.granted)}


def gpu_share():
    return GpuShare.options(name=SHARE_NAME, namespace=NAMESPACE, get_if_exists=True, lifetime="detached").remote()


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


def run_batch(bus_config: BusConfig, project: str, specs: list[RunSpec]) -> list[RunResult]:
    """Run ``specs`` at the same time (GPU runs as the fair share allows); one result each,
    in no particular order. Runs no node can hold are ``refused`` results (see above)."""
    results = []
    refused = _wait_placeable(specs)
    for spec in specs:
        if spec.id in refused:
            system = Bus(config=bus_config).project(project).as_role("system", f"run-{spec.id}")
            results.append(RunResult(id=spec.id, status="refused", reason=refused[spec.id]))
            record_result(system, results[-1], gpus=spec.gpus)
    specs = [s for s in specs if s.id not in refused]
    share = gpu_share() if any(s.gpus > 0 for s in specs) else None
    pending: dict[ray.ObjectRef, tuple[str, RunSpec]] = {}
    for spec in specs:
        if spec.gpus > 0:
            pending[share.acquire.remote(project, spec.gpus)] = ("grant", spec)
        elif (ref := _launch(bus_config, project, spec, results)) is not None:
            pending[ref] = ("run", spec)
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        kind, spec = pending.pop(ref)
        if kind == "grant":
            ray.get(ref)
            if (run_ref := _launch(bus_config, project, spec, results)) is not None:
                pending[run_ref] = ("run", spec)
            else:
                share.release.remote(project, spec.gpus)
            continue
        if spec.gpus > 0:
            share.release.remote(project, spec.gpus)
        try:
            results.append(RunResult.model_validate(ray.get(ref)))
        except ray.exceptions.RayError as e:  # not the run's code failing: Ray could not run it
            results.append(_lost(bus_config, project, spec, e))
    return results


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
