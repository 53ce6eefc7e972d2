"""The run queue's order (cluster.admission.FairQueue, no Ray) and, on the session's Ray
cluster (2 fake GPUs, 2 CPUs), runs of several projects admitted in that order, and
runs still waiting at a pause withdrawn, never started, and run once on resume."""

from __future__ import annotations

import threading
import time

import pytest
import ray

from actors.runs import RunPolicy, make_spec
from actors.state import State
from cluster.admission import FairQueue, demand_of
from cluster.scheduler import run_batch, run_queue

ONE_CPU = {"CPU": 1.0, "GPU": 0.0, "memory": 1e12}


def _cpu(n: float = 1) -> dict[str, float]:
    return demand_of(0, n, 1)


def _drain(q: FairQueue, capacity: dict) -> list[str]:
    """Admit one run at a time (one slot), each ending before the next: the admission order."""
    order = []
    while q.waiting:
        [item] = q.admit(capacity)
        order.append(f"{item.project}{item.run}")
        q.release(item.project, item.run)
    return order


def test_one_slot_serves_projects_round_robin_in_dispatch_order():
    q = FairQueue()
    for project in "abc":  # dispatched in this order, two runs each, while the slot is busy
        for run in "12":
            q.add(project, run, _cpu())
    assert _drain(q, ONE_CPU) == ["a1", "b1", "c1", "a2", "b2", "c2"]


def test_a_project_that_arrives_later_never_overtakes_an_earlier_one():
    """The sweep's symptom: the first project's run waited while eight later ones ran."""
    q = FairQueue()
    q.add("busy", "0", _cpu())
    [first] = q.admit(ONE_CPU)  # the slot is taken
    q.add("first", "1", _cpu())
    for i in range(8):
        q.add(f"later{i}", "1", _cpu())
    q.release(first.project, first.run)
    assert _drain(q, ONE_CPU)[0] == "first1"


def test_a_project_running_yields_to_one_that_waits():
    q = FairQueue()
    for run in "1234":
        q.add("a", run, _cpu())
    assert [w.run for w in q.admit({**ONE_CPU, "CPU": 2})] == ["1", "2"]
    q.add("b", "1", _cpu())  # arrives while a's 3 and 4 wait
    q.release("a", "1")
    assert [(w.project, w.run) for w in q.admit({**ONE_CPU, "CPU": 2})] == [("b", "1")]


def test_a_big_run_is_not_overtaken_but_a_cpu_run_passes_a_gpu_run():
    q = FairQueue()
    q.add("a", "small", _cpu(1))
    q.admit({**ONE_CPU, "CPU": 2, "GPU": 1})
    q.add("b", "big", _cpu(2))  # needs both CPUs: waits for a's run
    q.add("c", "small", _cpu(1))  # fits now, but would overtake b's big run: waits too
    assert q.admit({**ONE_CPU, "CPU": 2, "GPU": 1}) == []
    q.release("a", "small")
    assert [w.run for w in q.admit({**ONE_CPU, "CPU": 2, "GPU": 1})] == ["big"]

    q = FairQueue()
    q.add("g", "gpu", demand_of(1, 0, 1))
    q.admit({**ONE_CPU, "CPU": 2, "GPU": 1})
    q.add("g", "gpu2", demand_of(1, 0, 1))  # waits for the GPU
    q.add("c", "cpu", _cpu(1))  # needs no GPU: passes
    assert [w.run for w in q.admit({**ONE_CPU, "CPU": 2, "GPU": 1})] == ["cpu"]


def test_withdrawn_runs_leave_the_queue_and_a_run_bigger_than_the_cluster_goes_to_ray():
    q = FairQueue()
    q.add("a", "1", _cpu())
    q.admit(ONE_CPU)
    q.add("a", "2", _cpu())
    q.add("b", "1", _cpu())
    assert [w.run for w in q.withdraw("a")] == ["2"] and [w.project for w in q.waiting] == ["b"]
    assert q.drop_holder("nobody") == [] and q.in_use("a") == 1
    q = FairQueue()
    q.add("a", "huge", demand_of(4, 1, 1))  # 4 GPUs on a 1-GPU cluster: Ray says it is infeasible
    assert [w.run for w in q.admit({**ONE_CPU, "GPU": 1})] == ["huge"]


# -- on Ray -----------------------------------------------------------------------------

POLICY = RunPolicy(sandbox="none", tmp_mb=16)


def _both_cpus(name: str, seconds: float = 0.5):
    return make_spec(name, f"sleep {seconds}", POLICY, cpus=2, memory_mb=64)  # one at a time on 2 CPUs


def _started(bus, project: str) -> list[str]:
    return [e["run"] for e in bus.project(project).events().to_pylist() if e["kind"] == "experiment_start"]


def _wait(predicate, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
def test_runs_of_three_projects_start_round_robin_in_dispatch_order(ray_cluster, bus):
    queue = run_queue()
    projects = ["rr-a", "rr-b", "rr-c"]
    threads = []
    for p in projects:
        bus.create_project(p)
        threads.append(threading.Thread(target=run_batch, args=(bus.config, p, [_both_cpus(f"{p}-1"),
                                                                                _both_cpus(f"{p}-2")])))
        threads[-1].start()
        # The next project dispatches once this one's runs are in the queue (or one runs).
        _wait(lambda: sum(w[0] == p for w in ray.get(queue.snapshot.remote())["waiting"]) + len(_started(bus, p))
              >= 2 - (p == "rr-a"), f"{p}'s runs queued")
    for t in threads:
        t.join(timeout=300)
    admitted = [f"{p}{r[len(p):]}" for p, r in ray.get(queue.snapshot.remote())["admitted"] if p in projects]
    # a's first run took the free slot; a's second was dispatched first in round 2.
    assert admitted == ["rr-a-1", "rr-a-2", "rr-b-1", "rr-c-1", "rr-b-2", "rr-c-2"], admitted
    starts = sorted((e["time"], e["run"]) for p in projects
                    for e in bus.project(p).events().to_pylist() if e["kind"] == "experiment_start")
    assert [r for _, r in starts] == admitted  # one slot: Ray started them in the order admitted


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
def test_runs_waiting_at_a_pause_never_start_and_run_once_after_resume(ray_cluster, bus):
    proj = bus.create_project("pz")
    specs = [_both_cpus("pz-1", 3), _both_cpus("pz-2"), _both_cpus("pz-3")]
    for s in specs:  # as the orchestrator does before it runs them: each run asked for and dispatched
        proj.as_role("system", "t").record("run_requested", s.id, run=s.id)
        proj.as_role("system", "t").record("dispatch", s.id, run=s.id, attempt=1)
    box: list = []
    batch = threading.Thread(target=lambda: box.append(run_batch(bus.config, "pz", specs)))
    batch.start()
    _wait(lambda: _started(bus, "pz") == ["pz-1"], "the first run started")
    proj.as_role("system", "cli").record("pause_requested", "paused by a test")
    batch.join(timeout=300)
    [results] = box
    assert [r.id for r in results] == ["pz-1"] and results[0].status == "ok"  # the one going finished
    events = proj.events().to_pylist()
    assert sorted(e["run"] for e in events if e["kind"] == "run_withdrawn") == ["pz-2", "pz-3"]
    assert _started(bus, "pz") == ["pz-1"]  # the two waiting never started
    state = State.from_events(proj.events())
    assert [r.id for r in state.pending_runs] == ["pz-2", "pz-3"]  # owed: resume dispatches them again

    proj.as_role("system", "resume").record("resumed", "resumed by a test")
    again = run_batch(bus.config, "pz", [s for s in specs if s.id in {r.id for r in state.pending_runs}])
    assert sorted((r.id, r.status) for r in again) == [("pz-2", "ok"), ("pz-3", "ok")]
    finished = [e["run"] for e in proj.events().to_pylist() if e["kind"] == "experiment"]
    assert sorted(finished) == ["pz-1", "pz-2", "pz-3"]  # each run once: nothing lost, nothing twice
    assert sorted(_started(bus, "pz")) == ["pz-1", "pz-2", "pz-3"]


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
def test_a_run_that_waited_past_the_budget_gets_only_what_is_left(bus):
    """--budget 10s ended at 20 s: runs given 8 s at dispatch started 10 s later. A run's
    time limit is now cut, when it starts, to the budget's end (the spec's deadline)."""
    from actors.runs import RunRequest, resolve
    from cluster.experiments import run_here

    spec = resolve(RunRequest(name="late", command="sleep 30", timeout_s=3600), POLICY, time_left_s=8.0)
    assert spec.timeout_s == 8 and spec.time_limit_s(spec.deadline - 3) == 3 and spec.time_limit_s(0) == 8
    bus.create_project("late")
    late = spec.model_copy(update={"deadline": time.time() - 1})  # it waited until the budget was spent
    [result] = run_here(bus.config, "late")([late])
    assert result.status == "refused" and "budget was spent while the run waited" in result.reason, result
    assert "experiment_start" not in [e["kind"] for e in bus.project("late").events().to_pylist()]
    cut = spec.model_copy(update={"deadline": time.time() + 2})  # 2 s left when it starts
    [result] = run_here(bus.config, "late")([cut])
    assert result.status == "timeout" and "what was left of the project's budget" in result.reason, result


@ray.remote(num_cpus=0)
class _Holder:
    """Stands in for an orchestrator: takes both CPUs in the queue, then is killed."""

    def take(self) -> bool:
        queue, me = run_queue(), ray.get_runtime_context().get_actor_id()
        ray.get(queue.enqueue.remote("dead", [("r", demand_of(0, 2, 1))], me))
        return ray.get(queue.admitted.remote("dead", "r"))


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
def test_what_a_dead_orchestrator_held_is_taken_back(ray_cluster):
    holder = _Holder.remote()
    assert ray.get(holder.take.remote())
    assert ray.get(run_queue().snapshot.remote())["in_use"].get("dead") == 1
    ray.kill(holder)
    _wait(lambda: "dead" not in ray.get(run_queue().snapshot.remote())["in_use"], "the dead holder's CPUs back")
