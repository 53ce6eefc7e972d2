"""A whole project in this process, without Ray: the real orchestrator (baseline
policy), the real agent loop, real experiments (``cluster.experiments.run_here``,
sandboxed where bubblewrap runs) and the real bus. A test scripts the subtasks it
cares about (a hostile model, a sloppy one) and lets the built-in baseline do the rest.
"""

from __future__ import annotations

import shutil

from actors.agent import Agent
from actors.baseline import BaselineLLM
from actors.llm.protocol import LLMReply, LLMRequest
from actors.llm.scripted import ScriptedLLM, reply
from actors.orchestrator import Orchestrator, OrchestratorConfig
from actors.policy import BaselinePolicy
from actors.runs import RunPolicy
from benchmarks.mlebench.task import Task
from bus import Bus
from cluster.experiments import run_here
from cluster.tasks import import_task


def call(tool: str, **arguments) -> LLMReply:
    return reply(calls=[(tool, arguments)])


class Hybrid:
    """Scripted replies for the subtask ids in ``script`` (picked by step, so a retried
    subtask replays them); the built-in baseline for every other subtask."""

    name = "hybrid"

    def __init__(self, script: dict[str, list[LLMReply]]):
        self.scripted, self.tags, self.baseline = ScriptedLLM(script, by_step=True), set(script), BaselineLLM()

    def complete(self, request: LLMRequest) -> LLMReply:
        return (self.scripted if request.tag in self.tags else self.baseline).complete(request)


def sandbox() -> str:
    return "bwrap" if shutil.which("bwrap") else "none"


def run_project(bus: Bus, task_dir: str, llm, project: str = "p", budget_s: float = 600,
                policy: RunPolicy | None = None, **settings):
    """Run ``project`` on ``task_dir`` to its end; returns (final state, grade).
    ``settings``: more ``OrchestratorConfig`` fields (max_steps, bus_memory...)."""
    task = Task(task_dir)
    import_task(bus, task, project)
    agent = Agent(bus, llm)
    config = OrchestratorConfig(project=project, task_kind=task.kind, data_kind=task.data.kind,
                                is_lower_better=task.is_lower_better,
                                budget_s=budget_s, **settings)
    state = Orchestrator(bus, config, BaselinePolicy(), lambda subs: [agent.run(project, s) for s in subs],
                         run_here(bus.config, project), run_policy=policy or RunPolicy(sandbox=sandbox(), memory_mb=2048),
                         hidden=tuple(str(p) for p in task.private_paths)).run()
    return state, task.grade(bus.project(project).dir / "submission" / "submission.csv")
