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
import sys

from actors.agent import Agent
from actors.llm.scripted import ScriptedLLM, reply
from actors.orchestrator import Orchestrator, OrchestratorConfig
from actors.policy import BaselinePolicy
from benchmarks.grading.task import Task, shipped_tasks
from bus import Bus
from bus.repair import repair
from cluster.experiments import run_experiment
from cluster.tasks import import_task

TRAIN = """import csv, json, sys
p = float(sys.argv[1])
rows = list(csv.DictReader(open("../../task/train.csv")))
test = list(csv.DictReader(open("../../task/test.csv")))
rate = sum(float(r["target"]) for r in rows) / len(rows)
with open("submission.csv", "w") as f:
    f.write("id,target\\n" + "".join(f"{r['id']},{min(rate * p, 1.0):.6f}\\n" for r in test))
json.dump({"cv_score": 0.5 + p / 10, "higher_is_better": 1}, open("metrics.json", "w"))
print("p =", p, "rows =", len(rows))
"""
PARAMS = (0.5, 2.0, 1.0)  # run p2 (2.0) scores best


def _calls(*calls):
    return reply(calls=list(calls))


def script() -> dict:
    return {
        "analyse-1": [_calls(("read_file", {"path": "task/description.md"})),
                      _calls(("write_file", {"path": "analysis/data.md", "content": "# Data\nbinary target\n",
                                                       "summary": "the data"})),
                      _calls(("append_log", {"path": "logs/analysis.md", "text": "- looked at the task"})),
                      _calls(("finish", {"summary": "wrote analysis/data.md"}))],
        "implement-1": [_calls(("write_file", {"path": "code/train.py", "content": TRAIN, "summary": "rate model"})),
                        _calls(("append_log", {"path": "logs/implementation.md", "text": "- code/train.py: rate model"})),
                        _calls(("finish", {"summary": "wrote code/train.py"}))],
        "experiment-1": [_calls(*[("launch_experiment", {"name": f"p{i}", "command": f"python3 ../../code/train.py {p}",
                                                         "timeout_s": 60}) for i, p in enumerate(PARAMS)]),
                         _calls(("append_log", {"path": "logs/experiments.md", "text": "- launched p0, p1, p2"})),
                         _calls(("finish", {"summary": f"asked for {len(PARAMS)} runs"}))],
        "submit-1": [_calls(("copy_file", {"src": "experiments/p1/submission.csv", "dst": "submission/submission.csv",
                                            "summary": "predictions of p1"})),
                     _calls(("finish", {"summary": "submitted p1"}))],
    }


def main(root: str, project: str) -> None:
    print("started", flush=True)  # imports done: the test's kill window starts here
    bus = Bus(root)
    task = Task(shipped_tasks()["breast-cancer"])
    if project in bus.projects():
        repair(bus, project)  # what a SIGKILL left half-done in the index
    import_task(bus, task, project)
    agent = Agent(bus, ScriptedLLM(script()))

    def runs(specs: list[dict]) -> list[dict]:
        return [run_experiment(bus.config.model_dump(mode="json"), project,
                               {**s, "hide": [str(task.private_dir)], "memory_mb": 2048}) for s in specs]

    config = OrchestratorConfig(project=project, task_kind="classification", budget_s=600)
    state = Orchestrator(bus, config, BaselinePolicy(), lambda subtasks: [agent.run(project, s) for s in subtasks],
                         runs).run()
    print(json.dumps({"stop_reason": state.stop_reason, "steps": state.steps}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
