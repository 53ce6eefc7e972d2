"""The real agent loop, with the real bus, against the scripted model (no Ray here)."""

import json

import pytest

from actors.agent import Agent, Subtask
from actors.llm.protocol import LLMReply, ScriptExhausted
from actors.llm.scripted import ScriptedLLM, reply
from actors.prompts import PromptError, render
from actors.roles import ROLES, Role


@pytest.fixture
def proj(bus):
    p = bus.create_project("iris")
    p.as_role("system").write("task/description.md", "Classify iris flowers into three species.\n", summary="task")
    return p


def run(bus, script, role="analyst", sid="s1", roles=None, **kw):
    llm = ScriptedLLM(script)
    result = Agent(bus, llm, roles=roles).run("iris", Subtask(id=sid, role=role, goal="Understand the task", **kw))
    return result, llm


def test_a_role_completes_a_subtask_and_its_files_carry_its_name(bus, proj):
    result, llm = run(bus, [
        reply(calls=[("read_file", {"path": "task/description.md"})]),
        reply(calls=[("write_file", {"path": "analysis/task.md", "content": "Three classes.\n", "summary": "the task"})]),
        reply(calls=[("finish", {"summary": "wrote analysis/task.md"})]),
    ])
    assert (result.status, result.steps, result.files_written) == ("finished", 3, ["analysis/task.md"])
    entry = {r["path"]: r for r in proj.as_role("viewer").workspace_map().to_pylist()}["analysis/task.md"]
    assert (entry["role"], entry["instance"], entry["summary"]) == ("analyst", "analyst-s1", "the task")
    # The model saw the task file's content as the tool's reply.
    assert "Classify iris" in llm.requests[1].messages[-1]["content"]
    kinds = [r["kind"] for r in proj.events().to_pylist() if r["instance"] == "analyst-s1"]
    assert kinds.count("llm_call") == 3 and kinds[0] == "agent_start" and kinds[-1] == "agent_end"


def test_a_scope_refusal_reaches_the_model_which_recovers(bus, proj):
    result, llm = run(bus, [
        reply(calls=[("write_file", {"path": "plan/roadmap.md", "content": "mine now", "summary": "x"})]),
        reply(calls=[("write_file", {"path": "analysis/roadmap-idea.md", "content": "idea", "summary": "idea"})]),
        reply(calls=[("finish", {"summary": "done"})]),
    ])
    assert result.status == "finished"
    refusal = llm.requests[1].messages[-1]
    assert refusal["role"] == "tool" and "refused" in refusal["content"] and "plan/roadmap.md" in refusal["content"]
    assert not (proj.dir / "plan" / "roadmap.md").exists()
    assert any(r["kind"] == "refused" and r["instance"] == "analyst-s1" for r in proj.events().to_pylist())


def test_malformed_calls_are_returned_and_end_the_invocation_after_three(bus, proj):
    result, llm = run(bus, [
        reply(calls=[("read_file", "{not json")]),
        reply(calls=[("delete_everything", {})]),
        reply(text="I think the answer is 42."),
    ])
    assert result.status == "failed" and "3 malformed" in result.summary
    errors = [req.messages[-1]["content"] for req in llm.requests[1:]] + [None]
    assert "not valid JSON" in errors[0] and "unknown tool 'delete_everything'" in errors[1]
    # A reply with one good call made progress, however many of its calls were refused
    # (the breaker: an experimenter whose third reply queued 3 runs beside 2 refused calls
    # ended as "3 malformed replies", its runs never waited on).
    result, _ = run(bus, [
        reply(calls=[("read_file", {"path": "task/description.md", "start": -1e30})]),
        reply(calls=[("read_file", {"nope": 1})]),
        reply(calls=[("read_file", {"path": "task/description.md"}), ("read_file", {"nope": 1}),
                     ("delete_everything", {})]),
        reply(calls=[("read_file", {"nope": 1})]),
        reply(calls=[("finish", {"summary": "ok"})]),
    ], sid="s3")
    assert result.status == "finished", result.summary
    # A good call in between resets the count.
    result, _ = run(bus, [
        reply(calls=[("read_file", {})]),
        reply(calls=[("read_file", {"path": "task/description.md"})]),
        reply(calls=[("read_file", "[]")]),
        reply(calls=[("finish", {"summary": "ok"})]),
    ], sid="s2")
    assert result.status == "finished"


def test_json_fallback_for_servers_without_tool_calling(bus, proj):
    result, llm = run(bus, [
        reply(text='Let me look.\n```json\n{"tool": "read_file", "arguments": {"path": "task/description.md"}}\n```'),
        reply(text='{"tool": "finish", "arguments": {"summary": "read it"}}'),
    ])
    assert (result.status, result.summary) == ("finished", "read it")
    assert "Classify iris" in llm.requests[1].messages[-1]["content"]


def test_budgets_end_the_invocation(bus, proj):
    different = [reply(calls=[("list_files", {"folder": f"f{i}"})]) for i in range(5)]  # repeats end sooner
    result, _ = run(bus, different, max_steps=3)
    assert (result.status, result.steps) == ("budget", 3)
    tight = {**ROLES, "analyst": Role(name="analyst", tools=ROLES["analyst"].tools, max_tokens=50)}
    result, _ = run(bus, different, roles=tight, sid="s2")
    assert result.status == "budget" and result.steps == 1


def test_context_budget_cuts_old_tool_output_but_keeps_it_on_the_bus(bus, proj):
    big = "\n".join(f"row {i}: " + "x" * 60 for i in range(300))  # ~20 KB
    proj.as_role("system").write("task/data.csv", big)
    small = {**ROLES, "analyst": Role(name="analyst", tools=ROLES["analyst"].tools, context_chars=12_000)}
    script = [reply(calls=[("read_file", {"path": "task/data.csv", "start": i + 1})]) for i in range(3)] + \
             [reply(calls=[("list_files", {"folder": f"f{i}"})]) for i in range(4)] + \
             [reply(calls=[("finish", {"summary": "ok"})])]
    result, llm = run(bus, script, roles=small)
    assert result.status == "finished"
    last = llm.requests[-1].messages
    assert sum(len(str(m.get("content") or "")) for m in last) <= 12_000 + 2_000  # the latest exchange is kept whole
    assert any(str(m.get("content", "")).startswith("[cut to fit the context") for m in last)
    assert proj.as_role("viewer").read("task/data.csv") == big


def test_each_step_regrounds_on_what_others_changed(bus, proj):
    other = proj.as_role("planner", "planner-9")
    hidden = proj.as_role("coder", "coder-9")

    class Meddler(ScriptedLLM):
        def complete(self, request):  # another agent writes while this one thinks
            if len(self.requests) == 0:
                other.write("plan/roadmap.md", "1. baseline\n", summary="first roadmap")
                hidden.write("code/model.py", "print(1)\n", summary="not the analyst's to read")
            return super().complete(request)

    llm = Meddler([reply(calls=[("list_files", {})]), reply(calls=[("finish", {"summary": "ok"})])])
    Agent(bus, llm).run("iris", Subtask(id="s1", role="analyst", goal="g"))
    news = [m["content"] for m in llm.requests[1].messages if m["role"] == "user" and "Changed by others" in str(m["content"])]
    # Only what the analyst may read: the coder's file is outside its scope.
    assert news == ["Changed by others since your last step:\n- write plan/roadmap.md by planner: first roadmap"]


def test_a_recorded_run_replays_deterministically_and_keeps_no_secrets(bus, proj, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-very-secret-key-123")
    script = [
        reply(text="reading sk-test-very-secret-key-123", calls=[("read_file", {"path": "task/description.md"})]),
        reply(calls=[("write_file", {"path": "analysis/a.md", "content": "A", "summary": "a"})]),
        reply(calls=[("finish", {"summary": "done"})]),
    ]
    first, _ = run(bus, script)
    viewer = proj.as_role("viewer")
    replay = ScriptedLLM.from_bus(viewer, "analyst-s1")
    assert replay.remaining == 3
    second = Agent(bus, replay).run("iris", Subtask(id="s1b", role="analyst", goal="Understand the task"))
    assert (second.status, second.steps, second.files_written) == (first.status, first.steps, first.files_written)
    for path in viewer.list("logs/llm"):
        text = viewer.read(path)
        assert "sk-test-very-secret-key-123" not in text
        assert "request" in json.loads(text) and "reply" in json.loads(text)
    assert "secret-key" not in proj.events().to_pandas().to_string()


def test_a_replay_asked_past_its_recording_stops_the_agent_as_a_budget_end(bus, proj):
    """A recording that ends before the agent's finish (its project's budget ended
    between two calls): the replayed agent stops as on a deadline; a plain script run
    out is still a fault, raised to the orchestrator."""
    cut = [reply(calls=[("write_file", {"path": "analysis/a.md", "content": "A", "summary": "a"})])]
    result = Agent(bus, ScriptedLLM(cut, recording=True)).run("iris", Subtask(id="s1", role="analyst", goal="Look"))
    assert result.status == "budget" and "recording of 's1' ends after 1 calls" in result.summary, result.summary
    assert result.files_written == ["analysis/a.md"]  # what the recorded agent did is done again
    with pytest.raises(ScriptExhausted):
        Agent(bus, ScriptedLLM(cut)).run("iris", Subtask(id="s2", role="analyst", goal="Look"))


def test_prompts_fail_loudly_on_a_missing_variable():
    with pytest.raises(PromptError, match="needs the variable 'goal'"):
        render("subtask", subtask_id="x")
    with pytest.raises(PromptError, match="no prompt template"):
        render("nonexistent")
    assert "Understand the task" in render("analyst") or render("analyst")
    assert LLMReply().text == ""
