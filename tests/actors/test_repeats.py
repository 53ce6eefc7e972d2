"""An agent that repeats the same call is told so, then ended (the real agent loop,
the real bus, the scripted model)."""

from actors.agent import Agent, Subtask
from actors.llm.scripted import ScriptedLLM, reply
from actors.repeats import RepeatGuard, signature


def test_the_same_refused_read_24_times_ends_at_the_third(bus):
    # The issue's analyst: the same refused read_file, 23 times, all 24 steps spent.
    proj = bus.create_project("iris")
    proj.as_role("system").write("task/description.md", "Classify iris.\n")
    refused = reply(calls=[("read_file", {"path": "operator/job.json"})])
    llm = ScriptedLLM([refused] * 24)
    result = Agent(bus, llm).run("iris", Subtask(id="a1", role="analyst", goal="understand"))
    assert result.status == "failed" and result.steps == 3
    assert result.summary.startswith("repeated call: the same call read_file") and "3 times in a row" in result.summary
    assert "NOTE: you made this same call (read_file, same arguments) 2 times" in llm.requests[2].messages[-1]["content"]
    assert "NOTE" not in llm.requests[1].messages[-1]["content"]
    events = proj.events().to_pylist()
    ended = [e for e in events if e["kind"] == "repeated_call"]
    assert len(ended) == 1 and ended[0]["subtask"] == "a1"
    assert [e for e in events if e["kind"] == "agent_end"][0]["summary"].startswith("failed: repeated call")


def test_repeats_in_text_calls_count_and_other_calls_reset(bus):
    proj = bus.create_project("iris")
    proj.as_role("system").write("task/description.md", "Classify iris.\n")
    read = '{"tool": "read_file", "arguments": {"path": "task/description.md"}}'
    spaced = '{"tool": "read_file", "arguments": {"path":   "task/description.md"}}'
    llm = ScriptedLLM([reply(text=read), reply(text=spaced), reply(calls=[("list_files", {})]), reply(text=read),
                       reply(calls=[("finish", {"summary": "done"})])])
    result = Agent(bus, llm).run("iris", Subtask(id="a1", role="analyst", goal="understand"))
    assert result.status == "finished"
    assert "NOTE" in llm.requests[2].messages[-1]["content"]  # the 2nd read, spaced differently, is the same call
    assert "NOTE" not in llm.requests[4].messages[-1]["content"]  # list_files came between


def test_signature_ignores_key_order_and_keeps_malformed_text():
    assert signature("f", '{"a": 1, "b": 2}') == signature("f", {"b": 2, "a": 1})
    assert signature("f", "{not json") == "f {not json"
    guard = RepeatGuard(limit=3)
    assert guard.check("f", {}) == "" and guard.check("f", {}).startswith("NOTE") and guard.check("g", {}) == ""
