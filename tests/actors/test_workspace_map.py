"""The workspace map that prompts show ranks what matters (peer case 18): the real agent
loop and tools against the scripted model, on a real bus."""

import json

import pytest

from actors.agent import Agent, Subtask
from actors.llm.scripted import ScriptedLLM, reply
from actors.llm_policy import LLMPolicy
from actors.orchestrator import OrchestratorConfig
from actors.roles import ROLES
from actors.state import State
from benchmarks.mlebench.task import Task, shipped_tasks
from cluster.tasks import import_task


@pytest.fixture
def long_project(bus):
    """A project that has run a while: 450 model calls, each leaving its transcript."""
    proj = import_task(bus, Task(shipped_tasks()["digits"]), "p")
    system = proj.as_role("system", "recorder")
    for i in range(450):
        system.write(f"logs/llm/coder-implement-{i // 20}/{i:08d}.json", json.dumps({"request": {}, "reply": {}}),
                     summary=f"LLM call of coder-implement-{i // 20}")
    proj.as_role("planner", "planner-1").write("plan/plan.md", "# Plan\nuse gradient boosting\n", summary="the plan")
    return proj


def first_prompt(bus, role="analyst", calls=(("finish", {"summary": "looked"}),), sid="a9"):
    llm = ScriptedLLM({sid: [reply(calls=[c]) for c in calls]})
    Agent(bus, llm).run("p", Subtask(id=sid, role=role, goal="Re-check the data"))
    return llm


def test_task_and_plan_are_in_the_map_of_a_long_project_and_transcripts_are_not(bus, long_project):
    prompt = first_prompt(bus).requests[0].messages[1]["content"]
    lines = prompt.splitlines()
    for path in ("task/train.csv", "task/description.md", "plan/plan.md"):
        assert any(line.startswith(f"{path}  ") for line in lines), path  # was: 400 transcripts, then "56 more"
    assert not any(line.startswith("logs/llm/") for line in lines)
    assert "(450 LLM transcripts in logs/llm/ not shown: list_files('logs/llm') lists them)" in lines
    assert len(prompt) < 4_000  # was 42,552 characters of a 48,000 budget


def test_list_files_shows_transcripts_only_when_asked_for_that_folder(bus, long_project):
    llm = first_prompt(bus, calls=(("list_files", {}), ("list_files", {"folder": "logs/llm/coder-implement-3"}),
                                   ("finish", {"summary": "ok"})))
    everything, transcripts = (r.messages[-1]["content"] for r in llm.requests[1:])
    files = [line for line in everything.splitlines() if not line.startswith("(")]
    assert "plan/plan.md" in everything and not any("logs/llm/" in line for line in files)
    assert "LLM transcripts in logs/llm/ not shown" in everything.splitlines()[-1]
    assert transcripts.count("\n") + 1 == 20 and all(line.startswith("logs/llm/coder-implement-3/")
                                                     for line in transcripts.splitlines())


def test_a_cut_map_keeps_task_plan_and_the_roles_own_files_first_and_says_what_it_left(bus):
    proj = bus.create_project("p")
    proj.as_role("system").write("task/description.md", "the task\n", summary="task")
    proj.as_role("planner", "planner-1").write("plan/plan.md", "plan\n", summary="the plan")
    analyst = proj.as_role("analyst", "analyst-1")
    for i in range(300):  # 300 older notes, ~90 characters a line: far more than a quarter of 12,000
        analyst.write(f"analysis/a-{i:03d}.md", "x", summary=f"note {i} " + "on the data " * 4)
    proj.as_role("coder", "coder-1").write("code/train.py", "print(1)\n", summary="the pipeline")
    small = {"coder": ROLES["coder"].model_copy(update={"context_chars": 12_000})}
    llm = ScriptedLLM({"c1": [reply(calls=[("finish", {"summary": "ok"})])]})
    Agent(bus, llm, roles=small).run("p", Subtask(id="c1", role="coder", goal="look"))
    lines = llm.requests[0].messages[1]["content"].splitlines()
    shown = [line.split("  ")[0] for line in lines if line.startswith(("task/", "plan/", "code/", "analysis/"))]
    notes = [path for path in shown if path.startswith("analysis/")]
    assert notes == [f"analysis/a-{i:03d}.md" for i in range(300 - len(notes), 300)]  # the newest, listed by path
    assert {"task/description.md", "plan/plan.md", "code/train.py"} <= set(shown) and 10 < len(shown) < 40
    assert f"... {303 - len(shown)} more files not shown" in "\n".join(lines)


def test_the_orchestrators_map_leaves_transcripts_out(bus, long_project):
    llm = ScriptedLLM({"orchestrator": [reply(text='{"action": "stop", "reason": "enough"}')]})
    LLMPolicy(bus, llm).decide(State(config=OrchestratorConfig(project="p")))
    prompt = llm.requests[0].messages[0]["content"]
    assert "plan/plan.md" in prompt and "task/train.csv" in prompt and "\nlogs/llm/" not in prompt


def test_another_agents_model_calls_are_not_news(bus):
    proj = bus.create_project("p")
    planner, recorder = proj.as_role("planner", "planner-9"), proj.as_role("system", "planner-9")

    class Busy(ScriptedLLM):
        def complete(self, request):  # another agent works (and calls its model) while this one thinks
            if not self.requests:
                recorder.write("logs/llm/planner-9/00000001.json", "{}", summary="LLM call of planner-9")
                planner.write("plan/roadmap.md", "1. baseline\n", summary="first roadmap")
            return super().complete(request)

    llm = Busy([reply(calls=[("list_files", {})]), reply(calls=[("finish", {"summary": "ok"})])])
    Agent(bus, llm).run("p", Subtask(id="s1", role="analyst", goal="g"))
    news = [m["content"] for m in llm.requests[1].messages if "Changed by others" in str(m["content"])]
    assert news == ["Changed by others since your last step:\n- write plan/roadmap.md by planner: first roadmap"]
