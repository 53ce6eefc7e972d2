"""The Orchestrator: one per project, thin control over thick state.

Its loop, ``run()``: re-ground from the bus -> decide the next subtasks -> dispatch
them (agents through the shared pool, experiments as Ray tasks, independent ones at
the same time) -> record -> check the stop conditions (target metric, wall clock,
steps, tokens). Everything it knows is re-read from the bus at every tick, so a
restarted orchestrator continues where the bus says it stopped: a subtask with a
``complete`` event is never run again; one with only a ``dispatch`` event was in flight.
"""

from __future__ import annotations

import json
import time
from typing import Callable, Literal

from pydantic import BaseModel, Field

from bus import Bus

from .agent import AgentResult, Subtask
from .policy import Decision, Policy, State

RunExperiments = Callable[[list[dict]], list[dict]]
RunAgents = Callable[[list[Subtask]], list[AgentResult]]


class OrchestratorConfig(BaseModel):
    """Stop conditions and switches of one project's orchestrator (saved in plan/config.json)."""

    project: str
    task_kind: Literal["classification", "regression"] = "classification"
    target: float | None = Field(default=None, description="Stop when the best CV score reaches this.")
    budget_s: float = Field(default=3600.0, gt=0, description="Wall-clock budget, from the project's first dispatch.")
    max_steps: int = Field(default=40, gt=0, description="Orchestrator decisions before it stops.")
    max_tokens: int = Field(default=5_000_000, gt=0, description="LLM tokens (all roles) before it stops.")
    bus_memory: bool = Field(default=True, description="Off (the paper's ablation): agents read only task/ and "
                             "what the orchestrator's prompt tells them, never other agents' files.")


class Orchestrator:
    def __init__(self, bus: Bus, config: OrchestratorConfig, policy: Policy, run_agents: RunAgents,
                 run_experiments: RunExperiments):
        self.bus, self.config, self.policy = bus, config, policy
        self.run_agents, self.run_experiments = run_agents, run_experiments
        self.view = bus.project(config.project).as_role("orchestrator", f"orchestrator-{config.project}")
        self.tick_overhead_ms: list[float] = []  # per tick, time outside agents and experiments

    def run(self) -> State:
        """Tick until a stop condition holds; returns the final state."""
        self.view.write("plan/config.json", self.config.model_dump_json(indent=1), summary="orchestrator settings")
        while True:
            t0 = time.perf_counter()
            state = self.reground()                       # 1. everything from the bus
            if state.stop_reason:                         # 4. stop conditions
                self.view.record("stopped", state.stop_reason, metrics=state.metrics())
                return state
            decision = self._resume(state) or self.policy.decide(state)  # 2. what next, and why
            self._record_decision(state, decision)
            if decision.stop:
                self.view.record("stopped", decision.reason, metrics=state.metrics())
                final = self.reground()
                final.stop_reason = decision.reason
                return final
            self.tick_overhead_ms.append((time.perf_counter() - t0) * 1000)
            self._dispatch(decision.subtasks)             # 3. agents, then the runs they asked for

    # -- the parts of a tick ----------------------------------------------------------

    def reground(self) -> State:
        state = State.from_events(self.bus.project(self.config.project).events(), self.config)
        state.check_stop()
        return state

    def _resume(self, state: State) -> Decision | None:
        """Subtasks dispatched but never completed (the orchestrator died meanwhile) go
        out again first, under the same ids, from their recorded definitions."""
        again = [Subtask.model_validate_json(self.view.read(f"plan/subtasks/{sid}.json"))
                 for sid in sorted(state.in_flight) if self.view.exists(f"plan/subtasks/{sid}.json")]
        return Decision(subtasks=again, reason=f"resume: {', '.join(s.id for s in again)} were in flight") if again else None

    def _record_decision(self, state: State, decision: Decision) -> None:
        line = f"- step {state.steps + 1}: {decision.reason} -> {[s.id for s in decision.subtasks] or 'stop'}\n"
        self.view.append("plan/decisions.md", line, summary=decision.reason[:120])
        self.view.record("decision", decision.reason, metrics={"subtasks": float(len(decision.subtasks))})
        self.view.write("plan/roadmap.json", json.dumps(self.policy.roadmap(state), indent=1), summary="roadmap")

    def _dispatch(self, subtasks: list[Subtask]) -> None:
        t0 = time.perf_counter()
        for s in subtasks:
            self.view.write(f"plan/subtasks/{s.id}.json", s.model_dump_json(indent=1), summary=f"{s.role}: {s.goal[:100]}")
            self.view.record("dispatch", f"{s.id} to {s.role}: {s.goal[:120]}")
        overhead = time.perf_counter() - t0
        results = self.run_agents(subtasks)
        t1 = time.perf_counter()
        specs = []
        for s, result in zip(subtasks, results):
            self.view.record("complete", f"{s.id} {result.status}: {result.summary[:200]}",
                             metrics={"ok": 1.0 if result.status == "finished" else 0.0, "steps": float(result.steps)})
            specs += [json.loads(self.view.read(p)) for p in result.files_written if p.endswith("/spec.json")]
        for spec in specs:
            self.view.record("dispatch", f"run-{spec['name']} {spec['command'][:120]}")
        overhead += time.perf_counter() - t1
        outs = self.run_experiments(specs) if specs else []
        t2 = time.perf_counter()
        for out in outs:
            self.view.record("complete", f"run-{out['name']} {out['status']}",
                             metrics={"ok": 1.0 if out["status"] == "ok" else 0.0})
        self.tick_overhead_ms[-1] += (overhead + time.perf_counter() - t2) * 1000
