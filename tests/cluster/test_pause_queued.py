"""A pause while runs wait for a CPU (issue 13): the runs waiting are withdrawn at once
and never start, the run going finishes within the grace, the orchestrator records the
pause itself (the driver's grace never runs out), and the resume runs the withdrawn
runs once each and finishes the project. On the session's Ray cluster (2 CPUs): each
run asks for both CPUs, so one runs and two wait."""

from __future__ import annotations

import threading
import time

import pytest

from actors.llm.config import LLMConfig
from actors.llm.scripted import reply
from actors.state import State
from benchmarks.mlebench.task import shipped_tasks
from benchmarks.perf.scripted_project import PARAMS, script
from cluster.run import make_job, run_job

pytestmark = pytest.mark.slow  # a whole project: `pytest -m 'not slow'` skips it

GRACE_S = 300.0  # far above what the one run going needs: the test shows the pause never waits it out


def _config() -> LLMConfig:
    steps = script()
    launches = [("launch_experiment", {"name": f"p{i}", "command": f"sleep 2 && python3 ../../code/train.py {p}",
                                       "cpus": 2, "timeout_s": 120}) for i, p in enumerate(PARAMS)]
    steps["experiment-1"] = [reply(calls=launches), *steps["experiment-1"][1:]]
    return LLMConfig(backend="scripted", script={k: [r.model_dump() for r in v] for k, v in steps.items()},
                     script_by_step=True)


def _events(bus, kind: str) -> list[dict]:
    return [e for e in bus.project("pq").events().to_pylist() if e["kind"] == kind] if "pq" in bus.projects() else []


def test_runs_waiting_at_a_pause_are_withdrawn_and_the_resume_runs_them_once(ray_cluster, bus):
    job = make_job(str(shipped_tasks()["breast-cancer"]), project="pq", llm=_config(), budget_s=3600)
    job.orchestrator.policy = "baseline"
    box: list = []
    first = threading.Thread(target=lambda: box.append(run_job(bus, job, grace_s=GRACE_S, quiet=True)))
    first.start()
    deadline = time.monotonic() + 300
    # One run going, two dispatched and waiting for its CPUs (beside a CPU-bound job the
    # second and third dispatches came after the pause: then nothing waits to withdraw).
    while not (_events(bus, "experiment_start") and len([e for e in _events(bus, "dispatch") if e["run"]]) >= 3):
        assert time.monotonic() < deadline, "three runs were not dispatched, one started, within 300 s"
        time.sleep(0.1)
    bus.project("pq").as_role("system", "cli").record("pause_requested", "paused by `aisci pause`")
    first.join(timeout=GRACE_S + 120)
    [out] = box
    assert out.paused, out
    [paused] = _events(bus, "paused")
    assert paused["instance"] == "orchestrator-pq", paused  # the orchestrator's own: the grace did not run out
    started = [e["run"] for e in _events(bus, "experiment_start")]
    withdrawn = sorted(e["run"] for e in _events(bus, "run_withdrawn"))
    assert len(started) == 1 and withdrawn == sorted({"p0", "p1", "p2"} - set(started)), (started, withdrawn)
    assert [e["run"] for e in _events(bus, "experiment")] == started  # the one going finished in the grace

    out = run_job(bus, job, grace_s=GRACE_S, quiet=True)  # what `aisci resume pq` does
    assert not out.paused and out.grade.valid_submission, out
    assert sorted(e["run"] for e in _events(bus, "experiment")) == ["p0", "p1", "p2"]  # each once
    assert sorted(e["run"] for e in _events(bus, "experiment_start")) == ["p0", "p1", "p2"]
    state = State.from_events(bus.project("pq").events())
    assert all(state.dispatches[r] == 2 for r in withdrawn) and state.dispatches[started[0]] == 1, state.dispatches
