"""Agent actors on a small real Ray cluster: one pool serving several projects."""

import re
import threading
import time

import pytest
import ray

from actors.agent import Subtask
from actors.llm.config import LLMConfig
from actors.llm.scripted import reply
from actors.llm.server import NAMESPACE, server_name
from actors.pool import AgentPool


def script_for(project: str) -> list[dict]:
    return [
        reply(calls=[("read_file", {"path": "task/description.md"})]).model_dump(),
        reply(calls=[("write_file", {"path": "analysis/notes.md", "content": f"notes about {project}\n",
                                     "summary": f"notes {project}"})]).model_dump(),
        reply(calls=[("finish", {"summary": f"done {project}"})]).model_dump(),
    ]


def test_one_pool_serves_two_projects_without_leaking(ray_cluster, bus):
    for name in ("alpha", "beta"):
        bus.create_project(name).as_role("system").write("task/description.md", f"the {name} task\n")
    config = LLMConfig(backend="scripted", script={"a1": script_for("alpha"), "b1": script_for("beta")})
    pool = AgentPool(2, bus.config, config)
    results = pool.run_many([("alpha", Subtask(id="a1", role="analyst", goal="g")),
                             ("beta", Subtask(id="b1", role="analyst", goal="g"))])
    assert [(r.project, r.status, r.summary) for r in results] == [("alpha", "finished", "done alpha"),
                                                                    ("beta", "finished", "done beta")]
    for name, other in (("alpha", "beta"), ("beta", "alpha")):
        proj = bus.project(name)
        assert proj.as_role("viewer").read("analysis/notes.md") == f"notes about {name}\n"
        instances = set(proj.events().column("instance").to_pylist())
        # The other project's subtask id as a whole word (the host's name, in the system's
        # instance, may end in "a1": vm-3769-37f5a1 failed this as a substring test).
        assert not any(other[0] + "1" in re.split(r"[^A-Za-z0-9]+", i or "") for i in instances), instances
    # Both actors used the one shared LLM actor.
    assert ray.get_actor(server_name(config), namespace=NAMESPACE) is not None
    ray.kill(ray.get_actor(server_name(config), namespace=NAMESPACE))


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
def test_a_subtask_whose_actor_dies_is_retried_on_another(ray_cluster, bus):
    bus.create_project("gamma").as_role("system").write("task/description.md", "the gamma task\n")
    slow = reply(calls=[("list_files", {})])
    slow.latency_s = 4.0  # the model "thinks" long enough for us to kill the agent actor
    config = LLMConfig(backend="scripted", script={"g1": [slow.model_dump(), reply(calls=[("finish", {"summary": "ok"})]).model_dump()]})
    pool = AgentPool(2, bus.config, config)
    assert ray.get([a.ping.remote() for a in pool.actors]) == [True, True]

    def kill_the_busy_actor():
        time.sleep(2.0)
        busy = [i for i, n in enumerate(pool._busy) if n]
        ray.kill(pool.actors[busy[0]], no_restart=False)  # Ray restarts it; the subtask moves on

    killer = threading.Thread(target=kill_the_busy_actor)
    killer.start()
    result = pool.run("gamma", Subtask(id="g1", role="analyst", goal="g"))
    killer.join()
    assert result.status == "finished"
    starts = [r for r in bus.project("gamma").events().to_pylist() if r["kind"] == "agent_start"]
    assert [s["instance"] for s in starts] == ["analyst-g1", "analyst-g1"]  # same subtask id: a recognisable retry
    ray.kill(ray.get_actor(server_name(config), namespace=NAMESPACE))


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
def test_calls_wait_for_a_restarted_llm_actor(ray_cluster):
    from actors.llm.protocol import LLMRequest
    from actors.llm.server import RemoteLLM

    config = LLMConfig(backend="scripted", script=[reply(text="pong").model_dump()] * 3)
    llm = RemoteLLM(config, restart_wait_s=60)
    assert llm.complete(LLMRequest(messages=[{"role": "user", "content": "ping"}])).text == "pong"
    ray.kill(llm._handle, no_restart=False)  # Ray restarts it (max_restarts=-1)
    assert llm.complete(LLMRequest(messages=[{"role": "user", "content": "ping"}])).text == "pong"
    ray.kill(llm._handle)
