"""A whole project in one process, to be SIGKILLed at random moments and resumed
(``tests/cluster/test_resume.py``).

    python -m tests.cluster.resume_worker ROOT PROJECT

The real orchestrator (baseline policy), the real agent loop driven by a scripted model
(each subtask's replies fixed, so a re-dispatched subtask replays them), real
experiments (subprocesses, sandboxed where bubblewrap is installed) and the real bus.
Each start does what ``aisci resume`` does: repair the index, then run from the bus.
"""

from __future__ import annotations

import json
import shutil
import sys

from actors.agent import Agent
from actors.llm.scripted import ScriptedLLM
from actors.orchestrator import Orchestrator, OrchestratorConfig
from actors.policy import BaselinePolicy
from actors.runs import RunPolicy
from benchmarks.mlebench.task import Task, shipped_tasks
from benchmarks.perf.scripted_project import script
from bus import Bus
from bus.repair import repair
from cluster.experiments import run_here
from cluster.tasks import import_task


def main(root: str, project: str) -> None:
    print("started", flush=True)  # imports done: the test's kill window starts here
    bus = Bus(root)
    task = Task(shipped_tasks()["breast-cancer"])
    if project in bus.projects():
        repair(bus, project)  # what a SIGKILL left half-done in the index
    import_task(bus, task, project)
    agent = Agent(bus, ScriptedLLM(script()))

    config = OrchestratorConfig(project=project, task_kind="classification", budget_s=600)
    policy = RunPolicy(sandbox="bwrap" if shutil.which("bwrap") else "none", memory_mb=2048)
    state = Orchestrator(bus, config, BaselinePolicy(), lambda subtasks: [agent.run(project, s) for s in subtasks],
                         run_here(bus.config, project), run_policy=policy, hidden=(str(task.private_dir),)).run()
    print(json.dumps({"stop_reason": state.stop_reason, "steps": state.steps}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
