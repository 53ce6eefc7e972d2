"""Token accounting: each model call counted once, per project, role and model, with
the prompt tokens a prefix cache served shown apart (the real agent loop, LLM policy
and bus, against the scripted model)."""

import json

import pytest

from actors.agent import Agent, Subtask
from actors.llm.protocol import ScriptExhausted
from actors.llm.scripted import ScriptedLLM, reply
from actors.llm_policy import LLMPolicy
from actors.orchestrator import OrchestratorConfig
from actors.state import State
from bus import query


def counted(r, prompt=100, cached=60, completion=10):
    r.prompt_tokens, r.cached_tokens, r.completion_tokens = prompt, cached, completion
    return r


def test_an_agents_tokens_are_counted_once_with_cached_tokens_apart(bus):
    proj = bus.create_project("p")
    proj.as_role("system").write("task/description.md", "Classify iris.\n")
    llm = ScriptedLLM({
        "a1": [counted(reply(calls=[("list_files", {})])), counted(reply(calls=[("read_file", {"path": "task/description.md"})])),
               counted(reply(calls=[("finish", {"summary": "done"})]))],
        "orchestrator": [counted(reply(text=json.dumps({"action": "stop", "reason": "done"})), 500, 0, 20)]})
    result = Agent(bus, llm).run("p", Subtask(id="a1", role="analyst", goal="look"))
    LLMPolicy(bus, llm).decide(State(config=OrchestratorConfig(project="p")))
    assert (result.prompt_tokens, result.completion_tokens) == (300, 30)
    rows = {r["role"]: r for r in query.tokens_by_role(bus, ["p"]).to_pylist()}
    # The issue: the agent_end row (its invocation's totals) was summed with the calls: 600 prompt tokens.
    assert {k: rows["analyst"][k] for k in ("model", "calls", "failed", "prompt_tokens", "cached_tokens",
                                            "completion_tokens", "cache_hit_rate")} == {
        "model": "scripted/scripted", "calls": 3, "failed": 0, "prompt_tokens": 300, "cached_tokens": 180,
        "completion_tokens": 30, "cache_hit_rate": 0.6}
    assert (rows["orchestrator"]["prompt_tokens"], rows["orchestrator"]["cache_hit_rate"]) == (500, 0.0)
    assert State.from_events(proj.events()).tokens == 300 + 30 + 500 + 20  # what the token budget counts


def test_a_failed_call_is_recorded_with_its_error_and_counted_as_failed(bus):
    proj = bus.create_project("p")
    llm = ScriptedLLM({"a1": [reply(calls=[("list_files", {})])]})  # the 2nd call: the script has run out
    with pytest.raises(ScriptExhausted):  # a system fault: raised to the orchestrator, recorded first
        Agent(bus, llm).run("p", Subtask(id="a1", role="analyst", goal="look"))
    calls = [e for e in proj.events().to_pylist() if e["kind"] == "llm_call"]
    assert [c["status"] for c in calls] == [None, "failed"]
    assert calls[1]["summary"].startswith("failed: ScriptExhausted: the scripted model has no reply left")
    transcript = json.loads(proj.as_role("viewer").read(f"logs/llm/analyst-a1/{calls[1]['seq']:08d}.json"))
    assert transcript["error"]["type"] == "ScriptExhausted" and "reply" not in transcript
    row = query.tokens_by_role(bus, ["p"]).to_pylist()[0]
    assert (row["calls"], row["failed"]) == (2, 1)
