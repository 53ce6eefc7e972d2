"""A tree-search project in one process, to be SIGKILLed at a named crash point and
resumed (``tests/cluster/test_tree_crash.py``).

    AISCI_CRASH_AT=<point>[:n] python -m tests.cluster.tree_crash_worker ROOT

The real orchestrator and baseline policy growing the solution tree (4 drafts, then an
ensemble), the real agent loop driven by the built-in baseline, real experiments of
the template pipeline on a small tabular task, the real bus. Besides the orchestrator's
own points (``orchestrator_after_decision``, ``orchestrator_after_node``) this worker
has four around the dispatch: ``agents_dispatched`` (dispatch events written, no agent
run), ``agents_done`` (agents ran, their ``complete`` events not written),
``runs_dispatched`` (run dispatch events written, no run started), ``runs_done``
(results recorded, the next decision not made). Each start does what ``aisci resume``
does: repair the index, then run from the bus.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from actors.agent import Agent
from actors.baseline import BaselineLLM
from actors.orchestrator import Orchestrator, OrchestratorConfig
from actors.policy import BaselinePolicy
from actors.runs import RunPolicy
from benchmarks.mlebench.task import Task
from bus import Bus
from bus.crashpoints import crashpoint
from bus.repair import repair
from cluster.experiments import run_here
from cluster.tasks import import_task
from tests.benchmarks import folders

PROJECT = "t"


def main(root: str) -> None:
    bus = Bus(root)
    data = Path(root) / "data"
    task = Task(str(folders.table_values(data)) if not data.exists() else str(next(data.iterdir())))
    if PROJECT in bus.projects():
        repair(bus, PROJECT)  # what a SIGKILL left half-done in the index
    import_task(bus, task, PROJECT)
    agent = Agent(bus, BaselineLLM())
    experiments = run_here(bus.config, PROJECT)

    def agents(subtasks):
        crashpoint("agents_dispatched")
        results = [agent.run(PROJECT, s) for s in subtasks]
        crashpoint("agents_done")
        return results

    def runs(specs):
        crashpoint("runs_dispatched")
        results = experiments(specs)
        crashpoint("runs_done")
        return results

    config = OrchestratorConfig(project=PROJECT, task_kind=task.kind, data_kind=task.data.kind,
                                is_lower_better=task.is_lower_better, budget_s=600, search="tree", branches=2,
                                max_nodes=5)
    policy = RunPolicy(sandbox="bwrap" if shutil.which("bwrap") else "none", memory_mb=2048)
    state = Orchestrator(bus, config, BaselinePolicy(), agents, runs, run_policy=policy,
                         hidden=tuple(str(p) for p in task.private_paths)).run()
    print(json.dumps({"stop_reason": state.stop_reason}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
