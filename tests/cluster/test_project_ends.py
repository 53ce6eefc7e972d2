"""Every project ends, and says how (issue 10, kinds 1 and 2): a failed orchestrator is
marked failed on the bus with the reason; the wall-clock budget is a limit that runs
are cut to; paused time does not count against it."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from actors.llm.config import LLMConfig
from actors.roles import ROLES
from actors.runs import RunPolicy
from benchmarks.mlebench.task import Task, shipped_tasks
from cluster.cli import main
from cluster.cli_run import EXIT_FAILED, EXIT_PAUSED
from cluster.job import save_job
from cluster.run import make_job, run_job
from cluster.tasks import import_task

from .inprocess import Hybrid, call, run_project, sandbox

TASK = Task(shipped_tasks()["breast-cancer"])


@pytest.mark.slow
def test_an_orchestrator_that_fails_is_marked_failed_and_status_says_so(ray_cluster, bus, capsys):
    """The model's endpoint is down: the LLM policy cannot decide. Before: the run died
    with a Ray traceback and `aisci status` said "running" forever."""
    llm = LLMConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="m", max_retries=0, timeout_s=2)
    job = make_job(str(TASK.root), "down", llm, budget_s=300)
    out = run_job(bus, job, quiet=True)
    assert out.kind == "failed" and out.failed and not out.paused and "LLMUnavailable" in out.reason, out
    capsys.readouterr()
    assert main(["--root", str(bus.root), "status", "down"]) == 0
    table = capsys.readouterr().out
    assert "failed: orchestrator failed: LLMUnavailable" in table and "running" not in table, table
    kinds = [e["kind"] for e in bus.project("down").events().to_pylist()]
    assert kinds.count("failed") == 1
    again = run_job(bus, job, quiet=True)  # a resume tries again (and fails again, once more on the bus)
    assert again.kind == "failed"
    kinds = [e["kind"] for e in bus.project("down").events().to_pylist()]
    assert kinds.count("failed") == 2 and kinds.count("resumed") == 1


@pytest.mark.slow
def test_a_failed_project_exits_70_not_the_pause_code_and_says_to_fix_the_cause(ray_cluster, bus, capsys):
    """Before: exit 75 (the README's code for "paused") and "continue with `aisci resume`",
    though a resume repeats the crash until its cause (here: the endpoint) is fixed."""
    llm = LLMConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="m", max_retries=0, timeout_s=2)
    job = make_job(str(TASK.root), "down-cli", llm, budget_s=300)
    import_task(bus, TASK, "down-cli")
    save_job(bus, job)
    capsys.readouterr()
    with pytest.raises(SystemExit) as end:
        main(["--root", str(bus.root), "resume", "down-cli"])
    out = capsys.readouterr().out
    assert end.value.code == EXIT_FAILED == 70 and EXIT_PAUSED == 75, out[-2000:]
    assert "failed: the orchestrator failed: LLMUnavailable" in out, out[-2000:]
    assert "fix the cause, then `aisci resume down-cli` retries" in out and "continue with" not in out, out[-2000:]


ANALYST_MAX_STEPS = ROLES["analyst"].max_steps


@pytest.mark.slow
def test_a_run_is_cut_to_the_budget_left(bus):
    """The issue's example: --budget 15s with a 45 s run ended at 46 s. The run's timeout
    is now what is left of the budget (at most 12 s), and the project ends within it."""
    script = {"implement-1": [call("write_file", path="code/train.py", content="import time\ntime.sleep(45)\n",
                                   summary="slow"), call("finish", summary="ok")],
              "experiment-1": [call("launch_experiment", name="slow", command="python3 ../../code/train.py",
                                    timeout_s=3600), call("finish", summary="asked")]}
    state, grade = run_project(bus, str(TASK.root), Hybrid(script), budget_s=12)
    [run] = state.runs
    assert run.status == "timeout", run
    # What is asserted is the cut, not how fast a loaded machine gets through the rest:
    # the run was given at most what was left of the 12 s, and was killed long before its 45 s.
    [dispatch] = [e for e in bus.project("p").events().to_pylist() if e["kind"] == "dispatch" and e["run"] == "slow"]
    assert dict(dispatch["metrics"])["timeout_s"] <= 12, dispatch
    result = json.loads(bus.project("p").as_role("viewer").read("experiments/slow/result.json"))
    assert result["duration_s"] < 45, result


def test_paused_time_does_not_count_against_the_budget(bus):
    """A project paused for longer than its whole budget still has its budget after a resume."""
    project = bus.create_project("p")
    state, _ = run_project(bus, str(TASK.root), Hybrid({"implement-1": [call("finish", summary="later")]}),
                           budget_s=3600, policy=RunPolicy(sandbox=sandbox()))
    events = project.events().to_pylist()
    first = next(e["time"].timestamp() for e in events if e["kind"] == "decision")
    from actors.orchestrator import OrchestratorConfig
    from actors.state import State

    config = OrchestratorConfig(project="p", budget_s=3600)
    system = project.as_role("system", "test")
    system.record("paused", "spot notice")
    paused_at = time.time()
    # Two hours later (the clock is moved, not waited for): resumed.
    later = State.from_events(project.events(), config, now=paused_at + 7200)
    system.record("resumed", "by the test")
    resumed = State.from_events(project.events(), config, now=time.time() + 1)
    assert later.elapsed_s < paused_at - first + 1  # the pause's two hours are not counted
    assert resumed.elapsed_s < paused_at - first + 5 and resumed.time_left_s() > 3500


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
def test_an_agent_stops_at_the_projects_deadline(bus):
    """A subtask cannot outlive the budget: its agent stops at the next step after the
    deadline (a real model would otherwise take its 24 steps whatever the budget)."""
    slow = [call("read_file", path="task/description.md", start=i + 1) for i in range(30)]  # not repeats
    for r in slow:
        r.latency_s = 0.5  # the scripted model's thinking time
    state, _ = run_project(bus, str(TASK.root), Hybrid({"analyse-1": slow, "analyse-2": slow}), budget_s=3)
    ends = [e for e in bus.project("p").events().to_pylist() if e["kind"] == "agent_end"]
    assert ends and all("wall-clock budget" in e["summary"] for e in ends), [e["summary"] for e in ends]
    assert state.stop_reason.startswith("wall-clock budget spent"), state
    # Each agent stopped before its role's step limit (counted, not timed: a loaded
    # machine may take longer per step, never more steps), so the deadline stopped it.
    steps = Counter(e["instance"] for e in bus.project("p").events().to_pylist() if e["kind"] == "agent_step")
    assert steps and max(steps.values()) < ANALYST_MAX_STEPS, steps
