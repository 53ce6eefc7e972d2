"""Values a hostile or sloppy model sends are refused or cut where they enter, never a
crash of the orchestrator (and so never a crash every resume repeats): half an emoji
(a lone surrogate) in a decision or a tool call, a decision far over its lengths, an
endpoint that drips one byte at a time past the project's budget. The real
orchestrator, LLM policy, agent loop and bus; a real HTTP endpoint where the wire
matters."""

import json
import socket
import threading
import time

import pytest

from actors.agent import Agent, Subtask
from actors.llm.config import LLMConfig, make_llm
from actors.llm.protocol import LLMDeadline, LLMRequest, LLMUnavailable
from actors.llm.scripted import ScriptedLLM, reply
from actors.llm_policy import DECISION_LIMITS, LLMPolicy
from actors.orchestrator import Orchestrator, OrchestratorConfig
from actors.state import State

from .stub_endpoint import StubEndpoint


def decide(action, reason, role=None, goal=""):
    return reply(text=json.dumps({"action": action, "role": role, "goal": goal, "reason": reason}))


def orchestrate(bus, llm, name="p", budget_s=600.0):
    proj = bus.create_project(name)
    proj.as_role("system").write("task/description.md", "Predict the digit.", summary="the task")
    agent = Agent(bus, llm)
    config = OrchestratorConfig(project=name, policy="llm", budget_s=budget_s)
    return Orchestrator(bus, config, LLMPolicy(bus, llm), lambda subs: [agent.run(name, s) for s in subs],
                        lambda specs: []).run()


@pytest.mark.parametrize("half", ["\ud83d", "\udc00", "\\ud83d", "\\udfff"], ids=["raw-high", "raw-low",
                                                                                   "escaped-high", "escaped-low"])
def test_half_an_emoji_in_a_decision_is_kept_as_a_replacement_character(bus, half):
    # Raw: the character itself in the reply text; escaped: "\ud83d" written inside the JSON.
    text = '{"action": "stop", "reason": "done ' + half + '"}'
    state = orchestrate(bus, ScriptedLLM({"orchestrator": [reply(text=text)]}))
    assert state.stop_reason.startswith("done \ufffd")
    again = State.from_events(bus.project("p").events(), OrchestratorConfig(project="p"))
    assert again.stopped.startswith("done \ufffd") and not again.failed


def test_half_an_emoji_in_tool_arguments_reaches_the_bus_as_a_replacement_character(bus):
    write = reply(calls=[("write_file", {"path": "analysis/notes.md", "content": "x", "summary": "s"})])
    write.tool_calls[0].arguments = '{"path": "analysis/notes.md", "content": "a \\ud83d b", "summary": "c \\udc00"}'
    llm = ScriptedLLM({"orchestrator": [decide("dispatch", "look", "analyst", "look"), decide("stop", "enough")],
                       "analyst-1": [write, reply(calls=[("finish", {"summary": "wrote notes \ud83d"})])]})
    state = orchestrate(bus, llm)
    assert state.stop_reason.startswith("enough")
    viewer = bus.project("p").as_role("viewer")
    assert viewer.read("analysis/notes.md") == "a \ufffd b"
    assert state.completed == {"analyst-1": True}


def test_a_decision_over_its_lengths_is_cut_where_it_enters(bus):
    huge = "z" * 5_000_000
    state = orchestrate(bus, ScriptedLLM({"orchestrator": [decide("stop", huge)]}))
    decision = [e for e in bus.project("p").events().to_pylist() if e["kind"] == "decision"]
    assert len(decision) == 1 and len(decision[0]["summary"]) == DECISION_LIMITS["reason"]
    assert state.steps == 1 and state.stopped


def test_an_event_summary_is_cut_so_every_row_can_be_read_back(bus):
    view = bus.create_project("q").as_role("system", "t")
    view.record("note", "y" * 5_000_000)
    view.record("note", "after")
    rows = bus.project("q").events().to_pylist()
    assert [len(r["summary"]) for r in rows[-2:]] == [4000, 5]  # nothing dropped, nothing unreadable


class Drip:
    """An HTTP server that sends its headers, then one space every 0.2 s, forever: the
    client's per-read timeout never fires."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn):
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
            while not self.stop.is_set():
                conn.sendall(b" ")
                time.sleep(0.2)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
def test_a_dripping_endpoint_cannot_hold_a_call_past_its_deadline():
    drip = Drip()
    try:
        llm = make_llm(LLMConfig(backend="openai", base_url=drip.url, model="m", timeout_s=1, max_retries=0))
        t0 = time.monotonic()
        with pytest.raises(LLMDeadline, match="budget"):
            llm.complete(LLMRequest(messages=[{"role": "user", "content": "hi"}], deadline=time.time() + 2))
        assert time.monotonic() - t0 < 15
        # With no deadline, the call's own cap (timeout x attempts + 30 s) holds; here only its cause is checked:
        with pytest.raises(LLMDeadline, match="had ended before the call"):
            llm.complete(LLMRequest(messages=[{"role": "user", "content": "hi"}], deadline=time.time() - 1))
    finally:
        drip.close()


@pytest.fixture
def dripping_model():
    """A model behind a dripping endpoint, whose client would wait a minute per read."""
    drip = Drip()
    yield make_llm(LLMConfig(backend="openai", base_url=drip.url, model="m", timeout_s=60, max_retries=0))
    drip.close()


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
def test_a_project_whose_model_drips_ends_at_its_budget(bus, dripping_model):
    t0 = time.monotonic()
    state = orchestrate(bus, dripping_model, budget_s=3)
    assert time.monotonic() - t0 < 30
    assert state.stop_reason.startswith("wall-clock budget spent during the orchestrator's model call")


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
def test_an_agent_whose_model_drips_stops_at_the_deadline(bus, dripping_model):
    bus.create_project("p").as_role("system").write("task/description.md", "d", summary="t")
    result = Agent(bus, dripping_model).run("p", Subtask(id="analyst-1", role="analyst", goal="look",
                                                         deadline=time.time() + 2))
    assert result.status == "budget" and "wall-clock budget" in result.summary


def test_an_unreachable_endpoint_is_still_unavailable_not_a_deadline():
    with StubEndpoint(lambda body: (503, {"error": {"message": "down"}})) as stub:
        llm = make_llm(LLMConfig(backend="openai", base_url=stub.url, model="m", timeout_s=2, max_retries=0))
        with pytest.raises(LLMUnavailable):
            llm.complete(LLMRequest(messages=[{"role": "user", "content": "hi"}], deadline=time.time() + 30))
