"""Agent actors and the one pool of them that serves every project on the cluster.

An ``AgentActor`` is a thin Ray wrapper around ``actors.agent.Agent``: it holds no
project state, so any actor can run any subtask of any project. ``AgentPool`` sends
each subtask to the least busy actor, and re-sends it to another actor if the one
running it dies (the subtask id stays the same, so the retry is recognisable).
"""

from __future__ import annotations

import random

import ray

from bus import Bus, BusConfig

from .agent import Agent, AgentResult, Subtask
from .llm.config import LLMConfig, make_llm
from .llm.server import RemoteLLM
from .quick_run import Executor


@ray.remote(max_restarts=-1, max_task_retries=0)
class AgentActor:
    def __init__(self, bus_config: dict, llm_config: dict, bus_memory: bool = True, executor: Executor | None = None):
        config = LLMConfig.model_validate(llm_config)
        # The baseline and OpenAI backends are stateless clients: one per actor. The
        # others (a script, a vLLM engine) are one shared actor for the whole cluster.
        llm = make_llm(config) if config.backend in ("baseline", "openai") else RemoteLLM(config)
        self.agent = Agent(Bus(config=BusConfig.model_validate(bus_config)), llm, bus_memory=bus_memory,
                           window=config.window(), text_tools=config.tool_calling == "text", executor=executor)

    def run(self, project: str, subtask: dict) -> dict:
        return self.agent.run(project, Subtask.model_validate(subtask)).model_dump()

    def ping(self) -> bool:
        return True


class AgentPool:
    """A fixed set of agent actors shared by every project.

        >>> pool = AgentPool(4, bus.config, LLMConfig(backend="openai", ...))  # doctest: +SKIP
        >>> pool.run("iris", Subtask(id="a1", role="analyst", goal="..."))      # doctest: +SKIP
    """

    def __init__(self, size: int, bus_config: BusConfig, llm_config: LLMConfig, num_cpus: float = 0.0,
                 max_retries: int = 2, bus_memory: bool = True, env: dict[str, str] | None = None,
                 executor: Executor | None = None):
        """``env``: environment variables the actors need from the driver (the model's key).
        ``executor``: where the ``run`` tool executes (``actors.quick_run``); None: no ``run``."""
        if size < 1:
            raise ValueError("an agent pool needs at least one actor")
        self._env = dict(env or {})
        self._args = (bus_config.model_dump(mode="json"), llm_config.model_dump(), bus_memory, executor)
        # No CPU reserved by default: an agent mostly waits (for the model, the bus), and
        # pools that held CPUs while idle starved the experiments of a sweep (measured:
        # two pools of 2 x 0.5 CPU on 2 cores left no CPU for any run, and nothing moved).
        self._num_cpus = num_cpus
        self._actors = [self._new_actor() for _ in range(size)]
        self._busy = [0] * size  # in-flight subtasks per actor (this process's view)
        self.max_retries = max_retries

    def _new_actor(self):
        return AgentActor.options(num_cpus=self._num_cpus, runtime_env={"env_vars": self._env}).remote(*self._args)

    def submit(self, project: str, subtask: Subtask, avoid: int | None = None) -> tuple[int, ray.ObjectRef]:
        # Least busy (as this copy of the pool sees it); ties broken at random so that
        # the orchestrators of many projects, each with its own copy, spread out.
        # ``avoid``: the actor that just died (Ray is restarting it: a retry sent there
        # meets ActorUnavailableError again and spends a try for nothing).
        i = min(range(len(self._actors)), key=lambda j: (j == avoid, self._busy[j], random.random()))
        self._busy[i] += 1
        return i, self._actors[i].run.remote(project, subtask.model_dump())

    def run_many(self, items: list[tuple[str, Subtask]]) -> list[AgentResult]:
        """Run subtasks concurrently; a subtask whose actor dies is retried on another."""
        pending = {ref: (i, item, 0) for item in items for i, ref in [self.submit(*item)]}
        results: dict[int, AgentResult] = {}
        order = {id(item): n for n, item in enumerate(items)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            i, item, tries = pending.pop(done[0])
            self._busy[i] -= 1
            try:
                results[order[id(item)]] = AgentResult.model_validate(ray.get(done[0]))
            except ray.exceptions.RayActorError:
                # The actor died mid-subtask (node lost, OOM): Ray restarts it, and the
                # subtask goes to another actor now rather than waiting for that.
                if tries >= self.max_retries:
                    raise
                j, ref = self.submit(*item, avoid=i)
                pending[ref] = (j, item, tries + 1)
        return [results[n] for n in range(len(items))]

    def run(self, project: str, subtask: Subtask) -> AgentResult:
        return self.run_many([(project, subtask)])[0]

    @property
    def actors(self) -> list:
        return list(self._actors)
