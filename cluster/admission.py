"""Admission of experiment runs: one queue for the whole cluster, fair between projects.

Why a queue of our own: Ray does not promise any order among pending tasks that wait
for resources. Measured in a sweep, the first project's run was dispatched at
10:02:03 and started at 10:05:33, after runs of eight later projects; and a run that
Ray has queued starts whenever a CPU frees, even after its project was asked to pause
(36-49 s after the pause, against a 30 s grace). So no run goes to Ray before this
queue admits it, and it admits only what fits in what is free: Ray's own queue stays
(nearly) empty, and a run still waiting here can be withdrawn at a pause, never to
start.

The order (docs/sweeps.md says why): round-robin between projects, each project's runs
in dispatch order (start-time fair queueing with one unit per run). A run gets a tag:
one more than its project's previous tag, but never less than one more than the tag of
the last run admitted (a project that had nothing waiting joins the current round; it
earns no credit for idle time, so eight later projects cannot overtake the first one).
The lowest tag goes first; ties: the project with fewer runs in use, then dispatch
order. A run that does not fit marks the resources it is short of as taken: no later
run that needs one of them overtakes it (a big run is not starved by small ones), but
a CPU run still passes a GPU run that waits for a GPU.

``FairQueue`` is the bookkeeping (no Ray; tested alone). ``RunQueue`` is the one named
Ray actor around it: it reads what is free from Ray, takes back what a dead
orchestrator held, and tells Ray's autoscaler about the runs it holds back.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import ray
from ray.autoscaler.sdk import request_resources

RESOURCES = ("CPU", "GPU", "memory")
QUEUE_NAME = "run-queue"
_TICK_S = 1.0  # re-check what is free (Ray's figures lag), and for orchestrators that died
_HOLDERS_EVERY = 5  # ticks between checks for orchestrators that died (one GCS call each)
_SAMPLES = 3  # of what other actors hold: the least of the last 3 (Ray's figures lag by ~1 s)

__all__ = ["FairQueue", "RunQueue", "Waiting", "demand_of", "QUEUE_NAME", "RESOURCES"]


def demand_of(gpus: float, cpus: float, memory_bytes: float) -> dict[str, float]:
    return {"CPU": float(cpus), "GPU": float(gpus), "memory": float(memory_bytes)}


@dataclass
class Waiting:
    """A run waiting for admission."""

    seq: int  # dispatch order, over the whole cluster
    tag: int  # its round (see the module's docstring)
    project: str
    run: str
    demand: dict[str, float]
    holder: str | None  # the orchestrator that will own the run (actor_id:restarts), or None (a driver)


@dataclass
class FairQueue:
    """Which waiting runs to admit, given what is free. Not thread-safe (one actor owns it)."""

    waiting: list[Waiting] = field(default_factory=list)
    held: dict[tuple[str, str], tuple[dict[str, float], str | None]] = field(default_factory=dict)
    admitted: list[tuple[str, str]] = field(default_factory=list)  # (project, run) in admission order
    _seq: itertools.count = field(default_factory=itertools.count)
    _last_tag: dict[str, int] = field(default_factory=dict)  # project -> its last run's tag
    _round: int = 0  # the tag of the last run admitted

    def add(self, project: str, run: str, demand: dict[str, float], holder: str | None = None) -> Waiting:
        """Queue a run; one queued again (dispatched again by a restarted orchestrator)
        replaces its earlier entry."""
        self.waiting = [w for w in self.waiting if (w.project, w.run) != (project, run)]
        self.held.pop((project, run), None)
        tag = max(self._last_tag.get(project, 0), self._round) + 1
        self._last_tag[project] = tag
        item = Waiting(next(self._seq), tag, project, run, dict(demand), holder)
        self.waiting.append(item)
        return item

    def in_use(self, project: str) -> int:
        return sum(p == project for p, _ in self.held)

    def used(self) -> dict[str, float]:
        return {k: sum(d.get(k, 0.0) for d, _ in self.held.values()) for k in RESOURCES}

    def admit(self, capacity: dict[str, float], total: dict[str, float] | None = None) -> list[Waiting]:
        """Admit, in order, the waiting runs that fit in ``capacity`` (what our runs may
        use: the cluster less what other actors hold) next to the runs held. A run
        bigger than the whole cluster (``total``) goes through: Ray then says it is
        infeasible, or an autoscaler adds a node for it."""
        total = total or capacity
        free = {k: capacity.get(k, 0.0) - v for k, v in self.used().items()}
        short: set[str] = set()  # resources a run ahead is waiting for: no one overtakes it there
        out = []
        for item in sorted(self.waiting, key=lambda w: (w.tag, self.in_use(w.project), w.seq)):
            needs = {k for k, v in item.demand.items() if v > 0}
            if needs & short:
                continue
            lacking = {k for k in needs if item.demand[k] > free.get(k, 0.0) + 1e-9}
            infeasible = any(item.demand[k] > total.get(k, 0.0) + 1e-9 for k in needs)
            if lacking and not infeasible:
                short |= lacking
                continue
            self.waiting.remove(item)
            self.held[(item.project, item.run)] = (item.demand, item.holder)
            self.admitted.append((item.project, item.run))
            self._round = max(self._round, item.tag)
            for k in needs:
                free[k] = free.get(k, 0.0) - item.demand[k]
            out.append(item)
        return out

    def release(self, project: str, run: str) -> None:
        self.held.pop((project, run), None)

    def withdraw(self, project: str) -> list[Waiting]:
        """Take the project's waiting runs out of the queue (they were never admitted)."""
        gone = [w for w in self.waiting if w.project == project]
        self.waiting = [w for w in self.waiting if w.project != project]
        if gone:  # its next runs join the round where it is then, not behind the withdrawn ones
            self._last_tag[project] = min(self._last_tag.get(project, 0), self._round)
        return gone

    def drop_holder(self, holder: str) -> list[Waiting]:
        """Forget what a dead orchestrator held; returns the runs it still waited for."""
        for key in [key for key, (_, h) in self.held.items() if h == holder]:
            del self.held[key]
        waiting = [w for w in self.waiting if w.holder == holder]
        self.waiting = [w for w in self.waiting if w.holder != holder]
        return waiting


def _actor_info(actor_id: str) -> dict | None:
    try:
        return ray._private.state.state.actor_table(actor_id) or None
    except Exception:  # noqa: BLE001 - unknown: treated as alive (never take back what may be held)
        return None


def _incarnation(actor_id: str | None) -> str | None:
    """``actor_id:restarts``: the orchestrator as it is now (a restarted one is a new holder)."""
    info = _actor_info(actor_id) if actor_id else None
    return f"{actor_id}:{info.get('NumRestarts', 0)}" if info else actor_id


def _alive(holder: str) -> bool:
    """Whether that incarnation of the orchestrator still runs (not dead, not restarted:
    a restarted actor's runs died with its process, and it asks again for what it owes)."""
    actor_id, _, restarts = holder.partition(":")
    info = _actor_info(actor_id)
    return info is None or (info.get("State") != "DEAD" and str(info.get("NumRestarts", 0)) == (restarts or "0"))


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class RunQueue:
    """The cluster's one admission queue (``run_queue()``): ``enqueue`` a batch, then
    ``admitted`` per run (True: launch it, then ``release`` it when it ends; False: it
    was withdrawn, ``withdraw``, because its project pauses)."""

    def __init__(self):
        self.queue = FairQueue()
        self.futures: dict[tuple[str, str], asyncio.Future] = {}
        self.ticker: asyncio.Task | None = None
        self.asked: list[dict] = []  # what the autoscaler was last told
        self.others: list[dict[str, float]] = []  # the last samples of what other actors hold

    async def enqueue(self, project: str, runs: list[tuple[str, dict[str, float]]], holder: str | None = None) -> None:
        """Put a batch's runs in the queue, in its order (one call: calls to an async
        actor do not keep their order). ``holder``: the orchestrator's actor id."""
        holder = _incarnation(holder)
        for run, demand in runs:
            stale = self.futures.pop((project, run), None)
            if stale is not None and not stale.done():  # its caller died: the run is asked for again
                stale.set_result(False)
            self._future(project, run)
            self.queue.add(project, run, demand, holder)
        if self.ticker is None or self.ticker.done():
            self.ticker = asyncio.get_running_loop().create_task(self._tick())
        self._admit()

    async def admitted(self, project: str, run: str, demand: dict[str, float] | None = None,
                       holder: str | None = None) -> bool:
        """True once the run is admitted (launch it, then ``release`` it when it ends),
        False if it was withdrawn first. ``demand`` and ``holder`` as given to
        ``enqueue``: a queue restarted since (its node lost) has forgotten the run, and
        queues it again rather than leave its caller waiting forever."""
        key = (project, run)
        if key not in self.futures and demand is not None:
            await self.enqueue(project, [(run, demand)], holder)
        try:
            return await self._future(project, run)
        finally:
            self.futures.pop(key, None)

    def _future(self, project: str, run: str) -> asyncio.Future:
        return self.futures.setdefault((project, run), asyncio.get_running_loop().create_future())

    async def release(self, project: str, run: str) -> None:
        self.queue.release(project, run)
        self._admit()

    async def withdraw(self, project: str) -> list[str]:
        """The project's runs still waiting: withdrawn (their ``acquire`` returns False)."""
        gone = self.queue.withdraw(project)
        for w in gone:
            self._resolve(w, False)
        self._admit()
        return [w.run for w in gone]

    async def snapshot(self) -> dict:
        return {"in_use": {p: self.queue.in_use(p) for p, _ in self.queue.held},
                "waiting": [(w.project, w.run) for w in self.queue.waiting],
                "granted": [p for p, _ in self.queue.admitted], "admitted": list(self.queue.admitted)}

    def _resolve(self, item: Waiting, value: bool) -> None:
        future = self.futures.get((item.project, item.run))
        if future is not None and not future.done():
            future.set_result(value)

    def _admit(self) -> None:
        total = {k: ray.cluster_resources().get(k, 0.0) for k in RESOURCES}
        capacity = {k: total[k] - min((sample[k] for sample in self.others), default=0.0) for k in RESOURCES}
        for item in self.queue.admit(capacity, total):
            self._resolve(item, True)

    def _sample_others(self) -> None:
        """What other actors hold (an LLM engine's GPU): Ray's used less ours. Ray's figures
        lag (a run that just ended still looks held): the least of the last few samples
        counts, so a lag never holds a free slot back, at worst a run waits in Ray a moment."""
        total, available, used = ray.cluster_resources(), ray.available_resources(), self.queue.used()
        self.others = (self.others + [{k: max(total.get(k, 0.0) - available.get(k, 0.0) - used[k], 0.0)
                                       for k in RESOURCES}])[-_SAMPLES:]

    async def _tick(self) -> None:
        for n in itertools.count(1):
            if not (self.queue.waiting or self.queue.held):
                break
            await asyncio.sleep(_TICK_S)
            self._sample_others()
            holders = {h for _, h in self.queue.held.values()} | {w.holder for w in self.queue.waiting}
            for holder in holders if n % _HOLDERS_EVERY == 0 else ():  # one GCS call per orchestrator
                if holder and not _alive(holder):
                    for item in self.queue.drop_holder(holder):
                        self._resolve(item, False)
            self._admit()
            self._tell_autoscaler()
        self._tell_autoscaler()

    def _tell_autoscaler(self) -> None:
        """Runs held back here are demand Ray cannot see: ask for it (no-op without an autoscaler)."""
        bundles = [{k: v for k, v in d.items() if v > 0} for d, _ in self.queue.held.values()]
        bundles += [{k: v for k, v in w.demand.items() if v > 0} for w in self.queue.waiting]
        if bundles == self.asked:
            return
        self.asked = bundles
        try:
            request_resources(bundles=bundles)
        except Exception:  # noqa: BLE001 - best effort: a cluster without an autoscaler
            pass
