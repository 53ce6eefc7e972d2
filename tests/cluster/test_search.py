"""The search over the solution tree, whole projects in this process (the real
orchestrator, agent loop, experiments and bus): a failed run is debugged and re-run;
nodes written before a crash are there on resume; the LLM policy grows the tree."""

import json

import pytest

from actors.agent import Agent
from actors.llm.scripted import ScriptedLLM, reply
from actors.llm_policy import LLMPolicy
from actors.orchestrator import Orchestrator, OrchestratorConfig
from actors.policy import BaselinePolicy
from actors.runs import RunPolicy
from actors.tree import tree_rows
from benchmarks.mlebench.task import Task, shipped_tasks
from cluster.experiments import run_here
from cluster.report import write_report
from cluster.tasks import import_task

from .inprocess import Hybrid, call, run_project, sandbox

pytestmark = pytest.mark.slow  # whole projects


def _nodes(bus, project):
    return {r["node"]: r for r in tree_rows(bus, [project])}


def test_a_timed_out_node_is_debugged_with_a_smaller_model_and_the_report_draws_the_tree(bus):
    # draft-2 (the forest) is scripted to time out; the baseline recognises the timeout and fixes it.
    slow = Hybrid({"draft-2": [call("launch_experiment", name="draft-2", command="sleep 30", timeout_s=2),
                               call("finish", summary="asked")]})
    state, grade = run_project(bus, str(shipped_tasks()["breast-cancer"]), slow, project="t", search="tree",
                               branches=2, max_nodes=7)
    nodes = _nodes(bus, "t")
    assert nodes["draft-2"]["status"] == "timeout"
    debug = nodes["debug-1"]
    assert debug["parent"] == "draft-2" and debug["status"] == "ok" and debug["operator"] == "debug"
    view = bus.project("t").as_role("viewer")
    assert json.loads(view.read("plan/tree/debug-1.json"))["params"] == {"n_estimators": 100}
    assert "timeout" in json.loads(view.read("plan/tree/draft-2.json"))["failure"]
    assert len(nodes) == 7 and grade.valid_submission
    # The step that filled the tree made an ensemble of the best of each family, scored by cv like any node.
    ensemble = nodes["ensemble-1"]
    assert ensemble["operator"] == "ensemble" and ensemble["status"] == "ok" and ensemble["score"] is not None
    members = json.loads(view.read("plan/tree/ensemble-1.json"))["members"]
    assert len(members) == 3 and ensemble["parent"] == members[0]
    assert len({nodes[m]["run"] for m in members}) == 3 and all(nodes[m]["status"] == "ok" for m in members)
    best = max((r for r in nodes.values() if r["score"] is not None), key=lambda r: r["score"])
    assert state.best_run.id == best["run"]  # the champion: the best node by cv score
    text = write_report(bus.project("t"), grade)
    assert "## Solution tree" in text and view.read("report/tree.svg").startswith("<?xml")


def test_nodes_written_before_a_crash_are_there_on_resume_and_never_twice(bus):
    task = Task(str(shipped_tasks()["breast-cancer"]))
    import_task(bus, task, "c")
    agent = Agent(bus, Hybrid({}))
    config = OrchestratorConfig(project="c", task_kind=task.kind, data_kind=task.data.kind, budget_s=600,
                                search="tree", branches=3, max_nodes=5)
    policy = RunPolicy(sandbox=sandbox(), memory_mb=2048)

    def crash_at_the_first_draft(subtasks):
        if subtasks[0].id.startswith("draft"):
            raise RuntimeError("the node died")
        return [agent.run("c", s) for s in subtasks]

    with pytest.raises(RuntimeError):
        Orchestrator(bus, config, BaselinePolicy(), crash_at_the_first_draft, run_here(bus.config, "c"),
                     run_policy=policy).run()
    assert set(_nodes(bus, "c")) == {"draft-1", "draft-2", "draft-3"}  # written, then the crash
    state = Orchestrator(bus, config, BaselinePolicy(), lambda subs: [agent.run("c", s) for s in subs],
                         run_here(bus.config, "c"), run_policy=policy).run()  # a new one: no memory but the bus
    ids = [e["subtask"] for e in bus.project("c").events().to_pylist() if e["kind"] == "tree_node"]
    assert len(ids) == len(set(ids)) == 5
    assert all(r["status"] == "ok" for r in _nodes(bus, "c").values())
    assert set(state.tree.nodes) == set(ids)


def _decide(reason, **fields):
    return reply(text=json.dumps({"action": "dispatch", "reason": reason, **fields}))


def _metrics(score):
    return f"python3 -c \"import json; json.dump({{'cv_score': {score}}}, open('metrics.json', 'w'))\""


def test_the_llm_policy_drafts_in_parallel_and_sends_a_failed_run_to_the_debugger(bus):
    proj = bus.create_project("m")
    proj.as_role("system").write("task/description.md", "Predict y.", summary="the task")
    script = {
        "orchestrator": [_decide("two first tries", role="experimenter", goal="try a model", operator="draft",
                                 count=2),
                         _decide("fix it", operator="debug", parent="draft-1"),  # not buggy: shown the error
                         _decide("fix it", operator="debug", parent="draft-2", goal="fix the crash"),
                         reply(text=json.dumps({"action": "stop", "reason": "done"}))],
        "draft-1": [call("launch_experiment", name="draft-1-a", command=_metrics(0.7)), call("finish", summary="ok")],
        "draft-2": [call("launch_experiment", name="draft-2-a", command="python3 -c \"raise ValueError('boom')\""),
                    call("finish", summary="ok")],
        "debug-1": [call("launch_experiment", name="debug-1-a", command=_metrics(0.8)), call("finish", summary="fixed")],
    }
    llm = ScriptedLLM(script)
    agent = Agent(bus, llm)
    config = OrchestratorConfig(project="m", policy="llm", budget_s=600, branches=2)
    state = Orchestrator(bus, config, LLMPolicy(bus, llm), lambda subs: [agent.run("m", s) for s in subs],
                         run_here(bus.config, "m"), run_policy=RunPolicy(sandbox=sandbox(), memory_mb=2048)).run()
    nodes = _nodes(bus, "m")
    assert {k: (v["operator"], v["parent"], v["status"]) for k, v in nodes.items()} == {
        "draft-1": ("draft", None, "ok"), "draft-2": ("draft", None, "failed"), "debug-1": ("debug", "draft-2", "ok")}
    debugger = next(r for r in llm.requests if r.tag == "debug-1")
    shown = " ".join(str(m.get("content")) for m in debugger.messages)
    assert "ValueError: boom" in shown and "experiments/draft-2-a/spec.json" in shown and "code version" in shown
    assert state.tree.best.id == "debug-1"
    prompts = [r.messages for r in llm.requests if r.tag == "orchestrator"]
    assert any("is not buggy" in str(m.get("content")) for ms in prompts for m in ms)
    assert "draft-2 (draft): buggy" in prompts[-1][0]["content"]
