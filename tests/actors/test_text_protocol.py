"""Tool calls and decisions that a model writes as text, the way models write them
(peer case 7): the real agent loop and the real LLM policy, against the scripted model."""

import json

import pytest

from actors.agent import Agent, Subtask
from actors.llm.scripted import ScriptedLLM, reply
from actors.llm_policy import LLMPolicy
from actors.orchestrator import OrchestratorConfig
from actors.state import State
from actors.text_protocol import parse_text_calls

CALL = '{"tool": "read_file", "arguments": {"path": "task/description.md"}}'
SECOND = '{"tool": "read_file", "arguments": {"path": "task/train.csv"}}'
READ = ("read_file", {"path": "task/description.md"})


@pytest.fixture
def proj(bus):
    p = bus.create_project("iris")
    p.as_role("system").write("task/description.md", "Classify iris flowers into three species.\n", summary="task")
    p.as_role("system").write("task/train.csv", "a,b,target\n1,2,0\n", summary="train")
    return p


@pytest.mark.parametrize("text, calls", [
    (CALL, [READ]),
    (f"```json\n{CALL}\n```", [READ]),
    (f"```\n{CALL}\n```", [READ]),
    (f"The split is {{train, valid}}; first I read the task.\n{CALL}", [READ]),
    (CALL + "\n" + SECOND, [READ, ("read_file", {"path": "task/train.csv"})]),
    (f"[{CALL}, {SECOND}]", [READ, ("read_file", {"path": "task/train.csv"})]),
    ('The metrics file looks like\n```json\n{"cv_score": 0.9}\n```\nNow:\n' + CALL, [READ]),
    ("<think>maybe use {lr: 0.1}, or {\"tool\": \"finish\", \"arguments\": {}}</think>\n" + CALL, [READ]),
    ("I considered {a} and {b}.</think>" + CALL, [READ]),  # the template opened the block in the prompt
    ('<tool_call>{"name": "read_file", "arguments": {"path": "task/description.md"}}</tool_call>', [READ]),
])
def test_calls_are_found_in_prose_fences_lists_and_around_reasoning(text, calls):
    assert parse_text_calls(text) == calls


def test_the_agent_runs_every_call_of_a_prose_reply(bus, proj):
    llm = ScriptedLLM([
        reply(text=f"<think>the split is {{train, valid}}</think>\nFirst the task, then the data:\n"
                   f"```json\n{CALL}\n```\n```json\n{SECOND}\n```"),
        reply(text='Done. {"tool": "finish", "arguments": {"summary": "read both"}}'),
    ])
    result = Agent(bus, llm).run("iris", Subtask(id="s1", role="analyst", goal="look"))
    assert (result.status, result.summary, result.steps) == ("finished", "read both", 2)
    results = llm.requests[1].messages[-1]["content"]  # both results, in one message
    assert "Classify iris" in results and "1,2,0" in results


@pytest.mark.parametrize("text, error", [
    ("I think the answer is 42.", "no tool call found"),
    ('{"tool": "read_file", "arguments": {"path": "task/description.md"', "not valid JSON"),
    ('{"tool": "write_file", "arguments": {"path": "a.md", "content": "line one\nline two"}}', "not valid JSON"),
    ('Here: {"path": "task/description.md"}', 'no "tool"'),
])
def test_each_malformed_text_reply_gets_a_one_line_error_saying_what_to_send(bus, proj, text, error):
    llm = ScriptedLLM([reply(text=text), reply(calls=[("finish", {"summary": "ok"})])])
    Agent(bus, llm).run("iris", Subtask(id="s1", role="analyst", goal="look"))
    message = llm.requests[1].messages[-1]["content"]
    assert message.startswith("ERROR: ") and error in message and "\n" not in message
    assert '{"tool": name, "arguments": {...}}' in message


DECISION = {"action": "dispatch", "role": "analyst", "goal": "Understand the data", "reason": "nothing done yet"}


@pytest.mark.parametrize("text", [
    json.dumps(DECISION),
    f"```json\n{json.dumps(DECISION)}\n```",
    "Here is my decision: " + json.dumps(DECISION),
    "<think>the team has done {nothing}</think>\n" + json.dumps(DECISION),
    'The last run wrote {"cv_score": 0.9}, so:\n```\n' + json.dumps(DECISION) + "\n```",
])
def test_a_decision_is_read_from_a_fence_or_from_prose(bus, text):
    bus.create_project("p")
    llm = ScriptedLLM({"orchestrator": [reply(text=text)]})
    d = LLMPolicy(bus, llm).decide(State(config=OrchestratorConfig(project="p")))
    assert (d.stop, d.reason, [s.id for s in d.subtasks]) == (False, "nothing done yet", ["analyst-1"])


def test_a_reply_with_no_decision_is_told_what_to_send_and_asked_again(bus):
    bus.create_project("p")
    llm = ScriptedLLM({"orchestrator": [reply(text="Let's write some code first!"),
                                        reply(text='{"action": "dispatch", "role": "chef", "reason": "x"}'),
                                        reply(text=json.dumps(DECISION))]})
    d = LLMPolicy(bus, llm, max_invalid=3).decide(State(config=OrchestratorConfig(project="p")))
    assert [s.id for s in d.subtasks] == ["analyst-1"]
    errors = [r.messages[-1]["content"] for r in llm.requests[1:]]
    assert all(e.startswith("ERROR: ") and "\n" not in e for e in errors)
    assert '"action"' in errors[0] and "unknown role 'chef'" in errors[1]


def test_a_decision_cut_at_the_reply_cap_is_told_as_cut(bus):
    bus.create_project("p")
    llm = ScriptedLLM({"orchestrator": [reply(text='Thinking it over. {"action": "dispatch", "role": "analyst", "goa',
                                              finish_reason="length"),
                                        reply(text=json.dumps(DECISION))]})
    d = LLMPolicy(bus, llm).decide(State(config=OrchestratorConfig(project="p")))
    assert [s.id for s in d.subtasks] == ["analyst-1"]
    assert llm.requests[1].messages[-1]["content"].startswith(
        f"ERROR: your reply was cut at {LLMPolicy.MAX_REPLY_TOKENS} tokens")


@pytest.mark.parametrize("arguments, says", [
    ({"path": "task/description.md", "start": "abc"}, "argument 'start' must be an integer, not str"),
    ({"path": "task/description.md", "start": float("inf")}, "argument 'start' must be an integer, not float"),
    ({"path": "task/description.md", "end": 10**30}, "argument 'end' is out of range"),
    ({"path": None}, "argument 'path' must be a string, not NoneType"),
    ({"path": ["task"]}, "argument 'path' must be a string, not list"),
    ({"path": "task/description.md", "start": True}, "argument 'start' must be an integer, not bool"),
])
def test_a_tool_argument_of_the_wrong_type_is_the_models_error_not_the_subtasks_end(bus, arguments, says):
    """The breaker's example: `read_file` with `start: "abc"` ended the subtask with
    "agent error: ValueError"; now the model is told, and gets its next step."""
    from actors.tools import FormatError, ToolBox

    project = bus.create_project("p")
    project.as_role("system").write("task/description.md", "one\ntwo\n", summary="t")
    tools = ToolBox(project.as_role("analyst", "analyst-1"), ("read_file",))
    with pytest.raises(FormatError, match=says):
        tools.call("read_file", arguments)
    assert tools.call("read_file", {"path": "task/description.md", "start": 2.0}) == "two\n"  # a whole float is fine
