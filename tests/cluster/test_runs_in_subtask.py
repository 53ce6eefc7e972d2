"""Runs start inside the subtask that asks for them (issue 14): an experimenter launches
a run, waits for it with wait_for_runs and reads its metrics in the same subtask; the
orchestrator does not run it again afterwards; a pause during such a run withdraws the
runs still waiting (the resume runs them once); an agent that dies mid-subtask leaves
its run going, and the retried subtask waits for that same run. The real orchestrator
(LLM policy, scripted model), the real agent loop, the real bus, runs through the
cluster's run queue on the session's small Ray cluster (2 CPUs)."""

from __future__ import annotations

import functools
import json
import threading
import time

import pytest
import ray

from actors.agent import Agent
from actors.llm.config import LLMConfig
from actors.llm.record import recorded_calls
from actors.llm.scripted import ScriptedLLM, reply
from actors.llm.server import NAMESPACE, server_name
from actors.llm_policy import LLMPolicy
from actors.orchestrator import Orchestrator, OrchestratorConfig
from actors.pool import AgentPool
from actors.runs import RunPolicy
from cluster.scheduler import run_batch

from .inprocess import sandbox

pytestmark = pytest.mark.slow  # whole projects with real runs: `pytest -m 'not slow'` skips them

TRAIN = ('import json\nprint("training")\njson.dump({"cv_score": 0.75}, open("metrics.json", "w"))\n'
         'print("final cv 0.75")\n')
POLICY = RunPolicy(sandbox=sandbox(), memory_mb=512, tmp_mb=64, max_cpus=2)


def decide(action, reason, role=None, goal=""):
    return reply(text=json.dumps({"action": action, "role": role, "goal": goal, "reason": reason}))


def call(tool, **args):
    return reply(calls=[(tool, args)])


def launch(name, cpus=1, sleep=0, **more):
    return ("launch_experiment", {"name": name, "command": f"sleep {sleep} && python3 ../../code/train.py",
                                  "cpus": cpus, "timeout_s": 300, **more})


def new_project(bus, name):
    proj = bus.create_project(name)
    proj.as_role("system").write("task/description.md", "Predict the target.", summary="the task")
    proj.as_role("coder", "coder-0").write("code/train.py", TRAIN, summary="the pipeline")
    return proj


def orchestrator(bus, name, decisions, run_agents, run_experiments=None):
    config = OrchestratorConfig(project=name, policy="llm", budget_s=600)
    return Orchestrator(bus, config, LLMPolicy(bus, ScriptedLLM({"orchestrator": decisions})), run_agents,
                        run_experiments or functools.partial(run_batch, bus.config, name), run_policy=POLICY)


def answer(messages: list[dict]) -> str:
    """The last tool call's answer, as the model was shown it (news from the bus may follow)."""
    return [m for m in messages if m["role"] == "tool"][-1]["content"]


def events(bus, name, kind, run=None):
    return [e for e in bus.project(name).events().to_pylist() if e["kind"] == kind and (run is None or e["run"] == run)]


def test_an_experimenter_launches_a_run_waits_for_it_and_reads_its_metrics_in_the_same_subtask(ray_cluster, bus):
    new_project(bus, "ris")
    agent_llm = ScriptedLLM({"experimenter-1": [
        reply(calls=[launch("r1", timeout_s=5000), launch("big", cpus=2, memory_mb=999_999)]),
        call("wait_for_runs", runs=["r1", "big"], timeout_s=600),
        call("finish", summary="r1 scored 0.75"),
    ]})
    agent = Agent(bus, agent_llm)
    state = orchestrator(bus, "ris", [decide("dispatch", "measure", "experimenter", "run r1"), decide("stop", "done")],
                         lambda subs: [agent.run("ris", s) for s in subs]).run()
    assert state.stop_reason.startswith("done")
    seen = answer(agent_llm.requests[2].messages)  # what wait_for_runs answered, in the subtask
    assert seen.startswith("r1: ok in ") and "cv_score=0.75" in seen and "| final cv 0.75" in seen, seen
    # The operator's policy, not the model, decides: too much memory is refused with why.
    assert "big: refused" in seen and "the operator allows at most 65536 MB" in seen, seen
    [result] = events(bus, "ris", "experiment", "r1")
    [end] = [e for e in events(bus, "ris", "agent_end") if e["instance"] == "experimenter-experimenter-1"]
    assert result["seq"] < end["seq"]  # the run ended inside the subtask
    # Started once, never again by the orchestrator after the subtask; its time cut to the budget.
    [dispatch] = events(bus, "ris", "dispatch", "r1")
    assert dict(dispatch["metrics"])["timeout_s"] <= 600
    assert len(events(bus, "ris", "experiment_start", "r1")) == 1 and not events(bus, "ris", "dispatch", "big")
    assert [r.id for r in state.runs if r.status is None] == []


def test_a_pause_during_a_subtasks_run_withdraws_the_waiting_one_and_the_resume_runs_it_once(ray_cluster, bus):
    new_project(bus, "rip")
    agent_llm = ScriptedLLM({"experimenter-1": [
        reply(calls=[launch("going", cpus=2, sleep=3), launch("waiting", cpus=2)]),  # 2 CPUs: one waits
        call("wait_for_runs", timeout_s=600),
        call("finish", summary="paused"),
    ]})
    agent = Agent(bus, agent_llm)

    def pause_when_a_run_starts():
        deadline = time.monotonic() + 300
        while not events(bus, "rip", "experiment_start"):
            assert time.monotonic() < deadline, "no run started within 300 s"
            time.sleep(0.1)
        bus.project("rip").as_role("system", "cli").record("pause_requested", "paused by `aisci pause`")

    pauser = threading.Thread(target=pause_when_a_run_starts)
    pauser.start()
    state = orchestrator(bus, "rip", [decide("dispatch", "measure", "experimenter", "run two")],
                         lambda subs: [agent.run("rip", s) for s in subs]).run()
    pauser.join()
    assert state.stop_reason.startswith("paused"), state.stop_reason
    seen = answer(agent_llm.requests[2].messages)
    assert "the project is asked to pause" in seen, seen  # the wait ended at the pause, not at 600 s
    started = [e["run"] for e in events(bus, "rip", "experiment_start")]
    withdrawn = [e["run"] for e in events(bus, "rip", "run_withdrawn")]
    assert len(started) == 1 and withdrawn == sorted({"going", "waiting"} - set(started)), (started, withdrawn)
    assert [e["run"] for e in events(bus, "rip", "experiment")] == started  # the one going finished
    [paused] = events(bus, "rip", "paused")
    assert paused["instance"] == "orchestrator-rip"

    bus.project("rip").as_role("system", "driver").record("resumed", "aisci resume")
    state = orchestrator(bus, "rip", [decide("stop", "done")], lambda subs: [agent.run("rip", s) for s in subs]).run()
    assert state.stop_reason.startswith("done"), state.stop_reason
    for run in ("going", "waiting"):  # each ran exactly once; the withdrawn one dispatched once more
        assert len(events(bus, "rip", "experiment_start", run)) == 1, run
        assert len(events(bus, "rip", "experiment", run)) == 1, run
    assert [e["attempt"] for e in events(bus, "rip", "dispatch", withdrawn[0])] == [1, 2]


def test_an_agent_that_dies_mid_subtask_leaves_its_run_going_and_the_retry_waits_for_that_run(ray_cluster, bus):
    new_project(bus, "rid")
    slow = call("list_files")
    slow.latency_s = 8.0  # the model "thinks" while the run goes: long enough to kill the agent actor
    config = LLMConfig(backend="scripted", script_by_step=True, script={"experimenter-1": [r.model_dump() for r in [
        reply(calls=[launch("r-d", sleep=2)]), slow, call("wait_for_runs", runs=["r-d"], timeout_s=600),
        call("finish", summary="r-d ran"),
    ]]})
    pool = AgentPool(2, bus.config, config)
    assert ray.get([a.ping.remote() for a in pool.actors]) == [True, True]

    def kill_the_busy_actor_once_the_run_is_dispatched():
        deadline = time.monotonic() + 300
        while not events(bus, "rid", "dispatch", "r-d"):
            assert time.monotonic() < deadline, "the run was not dispatched within 300 s"
            time.sleep(0.1)
        busy = [i for i, n in enumerate(pool._busy) if n]
        ray.kill(pool.actors[busy[0]], no_restart=False)  # Ray restarts it; the subtask moves on

    killer = threading.Thread(target=kill_the_busy_actor_once_the_run_is_dispatched)
    killer.start()
    try:
        state = orchestrator(bus, "rid", [decide("dispatch", "measure", "experimenter", "run r-d"),
                                          decide("stop", "done")],
                             lambda subs: pool.run_many([("rid", s) for s in subs])).run()
    finally:
        killer.join()
        ray.kill(ray.get_actor(server_name(config), namespace=NAMESPACE))
    assert state.stop_reason.startswith("done"), state.stop_reason
    starts = [e["instance"] for e in events(bus, "rid", "agent_start")]
    assert starts == ["experimenter-experimenter-1"] * 2  # the subtask was retried under its id
    [complete] = events(bus, "rid", "complete")
    assert complete["status"] == "finished"
    # The retry asked again for the same run: it was not run twice, and ended inside the subtask.
    assert len(events(bus, "rid", "dispatch", "r-d")) == 1
    assert len(events(bus, "rid", "experiment_start", "r-d")) == 1
    [result] = events(bus, "rid", "experiment", "r-d")
    assert result["status"] == "ok" and result["seq"] < complete["seq"]
    assert events(bus, "rid", "agent_end")[-1]["summary"].startswith("finished: r-d ran")
    # What the retry's wait_for_runs answered (its last model call's request holds it).
    [last] = recorded_calls(bus.project("rid").as_role("viewer"), "experimenter-experimenter-1")[-1:]
    seen = answer(last["request"]["messages"])
    assert seen.startswith("r-d: ok in ") and "cv_score=0.75" in seen, seen


class Crash(BaseException):
    """The orchestrator's process dies here: nothing after it is recorded."""


def test_a_crash_while_a_subtasks_run_goes_neither_loses_nor_doubles_the_run(ray_cluster, bus):
    new_project(bus, "ric")
    first = Agent(bus, ScriptedLLM({"experimenter-1": [reply(calls=[launch("r-c")]), call("finish", summary="x")]}))

    def die_once_the_run_is_dispatched(subs):
        first.run("ric", subs[0])
        deadline = time.monotonic() + 300
        while not events(bus, "ric", "dispatch", "r-c"):
            assert time.monotonic() < deadline, "the run was not dispatched within 300 s"
            time.sleep(0.05)
        raise Crash  # the subtask has no complete event; its run was dispatched and never ran

    # A dead process's runs die with it (Ray ends a dead owner's tasks): these never run.
    dead = orchestrator(bus, "ric", [decide("dispatch", "measure", "experimenter", "run r-c")],
                        die_once_the_run_is_dispatched, run_experiments=lambda specs: [])
    with pytest.raises(Crash):
        dead.run()
    assert not events(bus, "ric", "experiment_start")

    bus.project("ric").as_role("system", "driver").record("resumed", "aisci resume")
    again = ScriptedLLM({"experimenter-1": [reply(calls=[launch("r-c")]), call("wait_for_runs", runs=["r-c"]),
                                            call("finish", summary="r-c ran")]})
    agent = Agent(bus, again)
    state = orchestrator(bus, "ric", [decide("stop", "done")], lambda subs: [agent.run("ric", s) for s in subs]).run()
    assert state.stop_reason.startswith("done"), state.stop_reason
    assert "already asked for (by an earlier attempt" in answer(again.requests[1].messages)
    seen = answer(again.requests[2].messages)  # the re-dispatched subtask waited for the same run
    assert seen.startswith("r-c: ok in ") and "cv_score=0.75" in seen, seen
    assert [e["attempt"] for e in events(bus, "ric", "dispatch", "r-c")] == [1, 2]  # once more, under its id
    assert len(events(bus, "ric", "experiment_start", "r-c")) == 1 and len(events(bus, "ric", "experiment", "r-c")) == 1
    [complete] = events(bus, "ric", "complete")
    assert events(bus, "ric", "experiment", "r-c")[0]["seq"] < complete["seq"]
