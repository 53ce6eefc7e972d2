"""The Orchestrator as a Ray actor: one per project, named after it, restartable.

A restarted actor (node lost, process killed) re-runs ``run()`` from the bus: finished
subtasks are not run again (see ``actors.orchestrator``).
"""

from __future__ import annotations

import ray

from bus import Bus, BusConfig

from .llm.config import LLMConfig, make_llm
from .llm.server import RemoteLLM
from .llm_policy import LLMPolicy
from .orchestrator import Orchestrator, OrchestratorConfig
from .policy import BaselinePolicy
from .pool import AgentPool

NAMESPACE = "aisci"


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)
class OrchestratorActor:
    def __init__(self, bus_config: dict, config: dict, pool: AgentPool, run_defaults: dict, llm_config: dict):
        self.bus = Bus(config=BusConfig.model_validate(bus_config))
        self.config = OrchestratorConfig.model_validate(config)
        self.pool, self.run_defaults = pool, run_defaults
        self.llm_config = LLMConfig.model_validate(llm_config)

    def _policy(self):
        if self.llm_config.backend == "baseline":
            return BaselinePolicy()
        llm = make_llm(self.llm_config) if self.llm_config.backend == "openai" else RemoteLLM(self.llm_config)
        return LLMPolicy(self.bus, llm)

    def run(self) -> dict:
        from cluster.experiments import RunSpec, launch

        def run_experiments(specs: list[dict]) -> list[dict]:
            refs = [launch(self.bus.config, self.config.project, RunSpec(**{**self.run_defaults, **s}))
                    for s in specs]
            return ray.get(refs)  # independent runs, at the same time, wherever Ray places them

        orchestrator = Orchestrator(self.bus, self.config, self._policy(),
                                    run_agents=lambda subtasks: self.pool.run_many([(self.config.project, s) for s in subtasks]),
                                    run_experiments=run_experiments)
        state = orchestrator.run()
        return {"stop_reason": state.stop_reason, "steps": state.steps, "tokens": state.tokens,
                "best_run": state.best_run, "elapsed_s": state.elapsed_s,
                "tick_overhead_ms": orchestrator.tick_overhead_ms}


def orchestrator_name(project: str) -> str:
    return f"orchestrator-{project}"
