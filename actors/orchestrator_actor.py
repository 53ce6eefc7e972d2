"""The Orchestrator as a Ray actor: one per project, named after it, restartable.

A restarted actor (its process killed, its node lost) re-runs ``run()`` from the bus:
finished subtasks are not run again (see ``actors.orchestrator``). Restarts caused by
a node preemption (a drain with the preemption reason) do not count against
``max_restarts``: Ray keeps them apart (``num_restarts_due_to_node_preemption``).

When the actor's node is being drained, it stops dispatching and records a pause; the
driver (``cluster.run``) then starts a new one elsewhere, which resumes from the bus.
"""

from __future__ import annotations

import json
import time

import ray

from bus import Bus, BusConfig, BusError

from .llm.config import LLMConfig, make_llm
from .llm.server import RemoteLLM
from .llm_policy import LLMPolicy
from .memory import PRIOR_JSON
from .orchestrator import Orchestrator, OrchestratorConfig, RunExperiments
from .outcome import Outcome
from .paper_policy import PaperPolicy
from .policy import BaselinePolicy
from .pool import AgentPool
from .runs import RunPolicy

NAMESPACE = "aisci"
MAX_RESTARTS = 5  # crashes; preemptions are not counted
# How a pause caused by a drain of the orchestrator's own node begins: the driver then
# starts a new orchestrator elsewhere instead of ending the job (cluster.run).
OWN_NODE_DRAIN = "node drain: the orchestrator's node"


def draining_nodes() -> dict[str, int]:
    """Ray's nodes being drained: node id (hex) -> deadline (ms since the epoch, 0 if none).

    A private Ray API (the one Ray Train's preemption watcher uses); an empty answer
    where it is missing only means drains are noticed when the node is gone."""
    try:
        return dict(ray._private.state.state.get_draining_nodes())
    except Exception:  # noqa: BLE001 - best effort by design
        return {}


@ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=-1, num_cpus=0)
class OrchestratorActor:
    def __init__(self, bus_config: dict, config: dict, pool: AgentPool, llm_config: dict,
                 run_experiments: RunExperiments, run_policy: dict, hidden: tuple[str, ...]):
        """``run_experiments`` executes resolved runs (``cluster.scheduler.run_batch``, bound
        to the bus and the project by the driver), called from threads of this actor
        (runs start while subtasks go: ``actors.run_dispatch``; the actor owns them, so
        an agent that dies leaves its runs going); ``run_policy`` and ``hidden`` are the
        operator's (from the job, never from the bus)."""
        self.bus = Bus(config=BusConfig.model_validate(bus_config))
        self.config = OrchestratorConfig.model_validate(config)
        self.pool, self.run_experiments = pool, run_experiments
        self.run_policy, self.hidden = RunPolicy.model_validate(run_policy), tuple(hidden)
        self.llm_config = LLMConfig.model_validate(llm_config)
        self.node = ray.get_runtime_context().get_node_id()

    def _policy(self):
        if self.config.policy == "baseline" or (self.config.policy == "auto" and self.llm_config.backend == "baseline"):
            return PaperPolicy() if self.config.track == "paper" else BaselinePolicy(prior=self._prior())
        llm = make_llm(self.llm_config) if self.llm_config.backend == "openai" else RemoteLLM(self.llm_config)
        return LLMPolicy(self.bus, llm, window=self.llm_config.window())

    def _prior(self) -> dict | None:
        """What similar earlier projects found (``plan/prior.json``, written once at the
        project's first start; absent with memory across projects off): the baseline's
        search drafts what won there first."""
        try:
            data = json.loads(self.bus.project(self.config.project).as_role("system", "orchestrator").read(PRIOR_JSON))
        except (BusError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _preempted(self) -> str | None:
        deadline = draining_nodes().get(self.node)
        if deadline is None:
            return None
        return f"{OWN_NODE_DRAIN} {self.node[:12]} is being drained" + (
            f" (deadline in {max(deadline / 1000 - time.time(), 0):.0f} s)" if deadline else "")

    def run(self) -> Outcome:
        orchestrator = Orchestrator(self.bus, self.config, self._policy(),
                                    run_agents=lambda subtasks: self.pool.run_many([(self.config.project, s) for s in subtasks]),
                                    run_experiments=self.run_experiments, preempted=self._preempted,
                                    run_policy=self.run_policy, hidden=self.hidden)
        state = orchestrator.run()
        kind = ("moved" if state.pause_moves else "paused") if state.pause_requested else "ended"
        return Outcome.of(kind, state.stop_reason or "", state, node=self.node,
                          tick_overhead_ms=orchestrator.tick_overhead_ms)


def orchestrator_name(project: str) -> str:
    return f"orchestrator-{project}"
