"""`aisci run` end to end: the baseline policy drives the real orchestrator, agents,
sandboxed experiments (Ray tasks) and bus to a graded submission."""

import json
import shutil

import pytest
import yaml

from actors.agent import Agent
from actors.baseline import BaselineLLM
from actors.orchestrator import Orchestrator, OrchestratorConfig
from actors.policy import BaselinePolicy
from actors.runs import RunPolicy
from benchmarks.mlebench.task import Task, TaskOptions, shipped_tasks
from cluster.errors import UserError
from cluster.experiments import run_here
from cluster.run import make_job, parse_budget, run_job, run_task
from cluster.tasks import import_task

pytestmark = pytest.mark.slow  # a whole project or a cluster of its own: `pytest -m 'not slow'` skips it

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


@needs_bwrap
def test_baseline_reaches_a_graded_submission(ray_cluster, bus):
    """(The memory-off ablation's run: tests/cluster/test_sweep.py, whose grid has it.)"""
    task = shipped_tasks()["digits"]
    on = run_task(bus, str(task), project="digits-on", budget_s=600)
    assert on.grade.valid_submission and on.grade.any_medal, on.grade
    viewer = bus.project("digits-on").as_role("viewer")
    assert [p["status"] for p in json.loads(viewer.read("plan/roadmap.json"))] == ["done"] * 4
    assert "silver" in viewer.read("report/report.md") or on.grade.medal in viewer.read("report/report.md")
    assert "<svg" in viewer.read("report/metric.svg")[:400]
    # The private answers never reached the bus.
    assert not any("answers" in p for p in viewer.list())


@needs_bwrap
def test_a_restarted_orchestrator_continues_from_the_bus(bus):
    task = Task(shipped_tasks()["diabetes"])
    import_task(bus, task, "dia")
    agent = Agent(bus, BaselineLLM())
    calls = []

    def agents(subtasks, crash_after=None):
        out = []
        for s in subtasks:
            calls.append(s.id)
            out.append(agent.run("dia", s))
            if s.id == crash_after:
                raise KeyboardInterrupt("the orchestrator dies here")
        return out

    config = OrchestratorConfig(project="dia", task_kind="regression", is_lower_better=task.is_lower_better)
    runs, policy, hidden = run_here(bus.config, "dia"), RunPolicy(memory_mb=4096), (str(task.private_dir),)
    with pytest.raises(KeyboardInterrupt):  # dies after implement-1 ran but before its completion was recorded
        Orchestrator(bus, config, BaselinePolicy(), lambda s: agents(s, "implement-1"), runs, run_policy=policy,
                     hidden=hidden).run()
    state = Orchestrator(bus, config, BaselinePolicy(), agents, runs, run_policy=policy, hidden=hidden).run()
    # analyse-1 finished before the crash and is not run again; implement-1 was in flight
    # and is re-dispatched once, under the same id.
    assert calls == ["analyse-1", "implement-1", "implement-1", "experiment-1", "submit-1"]
    assert state.stop_reason.startswith("every phase is done; submission: submission/submission.csv is in place") and state.best_run.cv_score > 0  # an RMSE: lowest is best
    assert state.best_run == min(state.scored_runs, key=lambda r: r.cv_score)
    grade = task.grade(bus.project("dia").dir / "submission" / "submission.csv")
    assert grade.valid_submission and grade.is_lower_better


@needs_bwrap
def test_a_competition_in_mlebench_data_dir_runs_to_its_report(ray_cluster, bus, tmp_path):
    """`aisci run ID --data-dir DIR --config FILE`: the data as `mlebench prepare` leaves
    it (the answers at prepared/private/test.csv), the definition elsewhere."""
    source = shipped_tasks()["breast-cancer"]
    data, home = tmp_path / "data", tmp_path / "definitions" / "bc"
    shutil.copytree(source / "prepared", data / "bc" / "prepared")
    (data / "bc" / "prepared" / "private" / "answers.csv").rename(data / "bc" / "prepared" / "private" / "test.csv")
    shutil.copy(source / "description.md", data / "bc" / "prepared" / "public" / "description.md")
    home.mkdir(parents=True)
    shutil.copy(source / "leaderboard.csv", home / "leaderboard.csv")
    (home / "config.yaml").write_text(yaml.safe_dump({
        "id": "bc", "name": "bc", "competition_type": "simple", "awards_medals": False,
        "dataset": {"answers": "bc/prepared/private/test.csv", "sample_submission": "bc/prepared/public/sample_submission.csv"},
        "grader": {"name": "auc-roc"}}))
    job = make_job("bc", "bc-1", budget_s=600, task_options=TaskOptions(data_dir=str(data), config=str(home / "config.yaml")))
    assert job.task_options.leaderboard == str(home / "leaderboard.csv") and str(data / "bc" / "prepared" / "private") in job.hidden
    out = run_job(bus, job)
    assert out.grade.competition_id == "bc" and out.grade.valid_submission and out.grade.leaderboard_size == 57, out.grade
    view = bus.project("bc-1").as_role("viewer")
    assert json.loads(view.read("task/task.json"))["metric"] == "auc-roc"
    assert not any("test.csv" == p.rsplit("/", 1)[-1] and "private" in p for p in view.list())


@needs_bwrap
@pytest.mark.parametrize("name, data", [("docstrings", "text"), ("glyphs", "images")])
def test_the_baseline_submits_on_the_text_and_image_tasks(ray_cluster, bus, name, data):
    """A whole run on each new kind of data: the analysis says the kind and the real
    columns, the grid is that kind's, the submission is graded above the median."""
    out = run_task(bus, str(shipped_tasks()[name]), project=f"{name}-1", budget_s=1800)
    assert out.grade.valid_submission and out.grade.above_median, out.grade
    view = bus.project(f"{name}-1").as_role("viewer")
    spec = json.loads(view.read("task/task.json"))
    assert spec["data"] == data
    analysis = view.read("analysis/data.md")
    assert f"Data kind: {data}." in analysis and f"`{spec['inputs']['label_column']}`" in analysis
    assert view.read("code/taskdata.py") and not any("answers" in p for p in view.list())


def test_budget_parsing():
    assert [parse_budget(b) for b in ("90s", "30m", "2h", "1d", "45")] == [90, 1800, 7200, 86400, 45]
    for bad in ("soon", "-5m", "0", "nan", "inf", ""):
        with pytest.raises(UserError, match="use a positive number of seconds"):
            parse_budget(bad)
