"""Long replies: the reply cap is the role's, and a reply the server cut at the cap is
told to the model as cut, not as malformed JSON (peer case 12, mode truncate). The real
agent loop against a real local endpoint that honours max_tokens, and the scripted model."""

import json

import pytest

from actors.agent import Agent, Subtask
from actors.llm.config import LLMConfig, make_llm
from actors.llm.protocol import LLMRequest
from actors.llm.scripted import ScriptedLLM, reply
from actors.roles import ROLES

from .stub_endpoint import CODE, StubEndpoint, coder_model, tool_call


@pytest.fixture
def proj(bus):
    p = bus.create_project("p")
    p.as_role("system").write("task/description.md", "Predict the target.\n", summary="task")
    return p


def run_coder(bus, url, roles=None):
    llm = make_llm(LLMConfig(backend="openai", base_url=url, model="stub", max_retries=0))
    return Agent(bus, llm, roles=roles).run("p", Subtask(id="c1", role="coder", goal="Write code/train.py"))


def test_a_coder_writes_a_20_kb_script_in_one_call(bus, proj):
    with StubEndpoint(coder_model(CODE, revisions=2)) as server:
        result = run_coder(bus, server.url)
    assert (result.status, result.summary) == ("finished", "wrote code/train.py"), result.summary
    assert proj.as_role("viewer").read("code/train.py") == CODE + "# revision 1\n"
    assert {r["max_tokens"] for r in server.requests} == {ROLES["coder"].max_reply_tokens}


def test_the_reply_cap_is_per_role_and_a_cut_reply_is_told_as_cut(bus, proj):
    short = {**ROLES, "coder": ROLES["coder"].model_copy(update={"max_reply_tokens": 1024})}
    with StubEndpoint(coder_model(CODE, revisions=3)) as server:
        result = run_coder(bus, server.url, roles=short)
    assert result.status == "failed" and "3 malformed" in result.summary
    assert {r["max_tokens"] for r in server.requests} == {1024}
    told = server.requests[1]["messages"][-1]
    assert told["role"] == "tool" and told["content"].startswith("ERROR: your reply was cut at 1024 tokens")
    assert "not valid JSON" not in told["content"] and "in parts" in told["content"]
    # The cut call goes back to the server as valid JSON: vLLM parses every echoed call.
    echoed = server.requests[1]["messages"][-2]["tool_calls"][0]["function"]["arguments"]
    assert isinstance(json.loads(echoed), dict)
    assert not proj.as_role("viewer").list("code")


def test_the_openai_backend_carries_the_finish_reason():
    with StubEndpoint(lambda body: tool_call(body, "write_file", {"content": "x" * 100})) as server:
        llm = make_llm(LLMConfig(backend="openai", base_url=server.url, model="stub"))
        cut = llm.complete(LLMRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=10))
        whole = llm.complete(LLMRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=100))
    assert (cut.finish_reason, cut.cut) == ("length", True)
    assert (whole.finish_reason, whole.cut) == ("tool_calls", False)


def test_a_cut_text_reply_runs_its_complete_calls_and_says_what_was_lost(bus, proj):
    whole = '{"tool": "read_file", "arguments": {"path": "task/description.md"}}'
    llm = ScriptedLLM([
        reply(text='{"tool": "write_file", "arguments": {"path": "analysis/a.md", "content": "a long', finish_reason="length"),
        reply(text=f'{whole}\n{{"tool": "write_file", "arguments": {{"path": "analysis/a.md"', finish_reason="length"),
        reply(calls=[("finish", {"summary": "ok"})]),
    ])
    result = Agent(bus, llm).run("p", Subtask(id="a1", role="analyst", goal="look"))
    assert result.status == "finished"
    cap = ROLES["analyst"].max_reply_tokens
    first, second = (r.messages[-1]["content"] for r in llm.requests[1:])
    assert first == f"ERROR: your reply was cut at {cap} tokens (the reply limit), so the call was incomplete " \
                    "and was not run: write the file shorter, or in parts (several smaller files), and make one " \
                    "call per reply"
    assert "Predict the target" in second and f"cut at {cap} tokens" in second
