"""A prompt over the model's window (peer case 12, mode overflow): recognised as such,
cut harder and sent once more, else the subtask (or the decision) ends with that reason.
The real agent loop and LLM policy against a real local endpoint that refuses long
prompts with vLLM's HTTP 400."""

import json

import pytest

from actors.agent import Agent, Subtask
from actors.llm.config import LLMConfig, make_llm
from actors.llm.overflow import context_overflow
from actors.llm.protocol import LLMContextOverflow, LLMError, LLMRequest, LLMUnavailable
from actors.llm_policy import LLMPolicy
from actors.orchestrator import OrchestratorConfig
from actors.state import State

from .stub_endpoint import (
    CODE,
    StubEndpoint,
    coder_model,
    completion,
    over_chars,
    over_tokens,
    overflow,
    prompt_chars,
)


def openai_llm(url):
    return make_llm(LLMConfig(backend="openai", base_url=url, model="stub", max_retries=0))


def run_coder(bus, respond, window=None):
    bus.create_project("p").as_role("system").write("task/description.md", "Predict the target.\n")
    with StubEndpoint(respond) as server:
        result = Agent(bus, openai_llm(server.url), window=window).run(
            "p", Subtask(id="c1", role="coder", goal="Write code/train.py"))
    return result, server.requests


def test_a_context_length_400_is_an_overflow_never_check_the_key():
    messages = [{"role": "user", "content": "x" * 1000}]
    with StubEndpoint(lambda body: overflow(body, 16384)) as server:
        with pytest.raises(LLMContextOverflow) as caught:
            openai_llm(server.url).complete(LLMRequest(messages=messages, max_tokens=1024))
    e = caught.value
    assert isinstance(e, LLMError) and not isinstance(e, LLMUnavailable)
    assert (e.limit_tokens, e.prompt_tokens) == (16384, prompt_chars({"messages": messages}) // 4)
    assert "check the model name and the key" not in str(e) and "llm.context_tokens" in str(e)
    openai_error = {"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages "
                                         "resulted in 9000 tokens. Please reduce the length of the messages.",
                              "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}
    with StubEndpoint(lambda body: (400, openai_error)) as server:
        with pytest.raises(LLMContextOverflow) as caught:
            openai_llm(server.url).complete(LLMRequest(messages=messages))
    assert (caught.value.limit_tokens, caught.value.prompt_tokens) == (8192, 9000)
    other = {"error": {"message": "The model `gpt-9` does not exist", "code": "model_not_found"}}
    with StubEndpoint(lambda body: (400, other)) as server:
        with pytest.raises(LLMUnavailable, match="check the model name"):
            openai_llm(server.url).complete(LLMRequest(messages=messages))


@pytest.mark.parametrize("message, limit, prompt", [
    ("This model's maximum context length is 4096 tokens. However, your request has 5000 input tokens. Please "
     "reduce the length of the input messages.", 4096, 5000),
    ("This model's maximum context length is 16384 tokens. However, you requested 1024 output tokens and your "
     "prompt contains at least 15361 input tokens, for a total of at least 16385 tokens.", 16384, 15361),
    ("input is longer than the maximum model length of 32768", 32768, None),
    ("'max_tokens' or 'max_completion_tokens' is too large: 1024. This model's maximum context length is 2048 tokens "
     "and your request has 1500 input tokens (1024 > 2048 - 1500).", 2048, 1500),
    ("The decoder prompt (length 5000) is longer than the maximum model length of 4096. Make sure that `max_model_len` "
     "is no smaller than the number of text tokens.", 4096, 5000),
    ("Input tokens exceed the configured limit of 272000 tokens. Your messages resulted in 300000 tokens.", 272000, 300000),
    ("the request exceeds the available context size, try increasing it", None, None),
    ("Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000 `inputs` tokens and "
     "1024 `max_new_tokens`", 4096, 4000),
])
def test_the_servers_ways_of_saying_it_are_recognised(message, limit, prompt):
    e = context_overflow(message)
    assert e is not None and (e.limit_tokens, e.prompt_tokens) == (limit, prompt)
    assert context_overflow("Invalid API key") is None and context_overflow("model not found") is None


def test_a_coder_rewriting_a_20_kb_script_never_overflows_peer_case_12(bus):
    # Case 12's stub refuses prompts over 60,000 characters; the coder wrote ~20 KB a step
    # and the 4th request (60,272) got "HTTP 400 ... check the model name and the key".
    refuse = over_chars(60_000)
    result, requests = run_coder(bus, coder_model(CODE, revisions=6, refuse=refuse))
    assert (result.status, result.summary) == ("finished", "wrote code/train.py"), result.summary
    assert len(requests) == 7 and not any(refuse(body) for body in requests)


def test_an_overflow_is_cut_harder_and_sent_once_more(bus):
    # Nobody told the agent the window: the role's 48,000 characters are more than fits.
    refuse = over_tokens(16384)
    result, requests = run_coder(bus, coder_model(CODE, revisions=4, refuse=refuse))
    assert (result.status, result.summary) == ("finished", "wrote code/train.py"), result.summary
    refused = [i for i, body in enumerate(requests) if refuse(body)]
    assert len(refused) == 1 and not refuse(requests[refused[0] + 1])  # retried, it fit, and the budget was lowered
    events = bus.project("p").events().to_pylist()
    assert sum(e["kind"] == "context_overflow" for e in events) == len(refused)
    assert bus.project("p").as_role("viewer").read("code/train.py") == CODE + "# revision 3\n"


def test_a_prompt_that_never_fits_ends_the_subtask_with_that_reason(bus):
    result, requests = run_coder(bus, lambda body: overflow(body, 512))
    assert result.status == "failed" and result.summary.startswith("context overflow: the prompt is over the model's")
    assert "check the" not in result.summary and len(requests) == 2  # asked, cut, asked once more
    assert len(json.dumps(requests[1]["messages"])) <= len(json.dumps(requests[0]["messages"]))


def test_a_known_window_is_the_budget_and_nothing_is_refused(bus):
    window = LLMConfig(backend="openai", context_tokens=12_000).window()
    refuse = over_tokens(12_000)
    result, requests = run_coder(bus, coder_model(CODE, revisions=4, refuse=refuse), window=window)
    assert result.status == "finished", result.summary
    assert not any(refuse(body) for body in requests)
    assert {body["max_tokens"] for body in requests} == {6_000}  # the coder's 8192, capped at half the window


def decision_endpoint(refuse):
    decision = {"action": "dispatch", "role": "analyst", "goal": "Look at the data", "reason": "nothing done yet"}
    return lambda body: overflow(body, 4096) if refuse(body) else completion({"content": json.dumps(decision)})


@pytest.fixture
def crowded(bus):
    """A project whose decision prompt shows ~150 files of ~100 characters each."""
    p = bus.create_project("p")
    for i in range(200):
        p.as_role("system").write(f"analysis/note-{i:03d}.md", "x", summary=f"note {i}: " + "about the data " * 5)
    return p


def test_the_policy_cuts_its_decision_prompt_on_an_overflow(bus, crowded):
    refuse = over_chars(8_000)
    with StubEndpoint(decision_endpoint(refuse)) as server:
        d = LLMPolicy(bus, openai_llm(server.url)).decide(State(config=OrchestratorConfig(project="p")))
    assert [s.id for s in d.subtasks] == ["analyst-1"]
    assert [refuse(body) for body in server.requests] == [True, False]


def test_the_policy_stops_with_the_reason_when_nothing_fits(bus, crowded):
    with StubEndpoint(decision_endpoint(lambda body: True)) as server:
        d = LLMPolicy(bus, openai_llm(server.url)).decide(State(config=OrchestratorConfig(project="p")))
    assert d.stop and d.reason.startswith("context overflow") and "check the" not in d.reason
    assert len(server.requests) == 2


def test_the_policy_fits_its_prompt_to_a_known_window(bus, crowded):
    window = LLMConfig(backend="openai", context_tokens=3_000, chars_per_token=4).window()
    refuse = over_tokens(3_000)
    with StubEndpoint(decision_endpoint(refuse)) as server:
        d = LLMPolicy(bus, openai_llm(server.url), window=window).decide(State(config=OrchestratorConfig(project="p")))
    assert [s.id for s in d.subtasks] == ["analyst-1"] and not refuse(server.requests[0])
