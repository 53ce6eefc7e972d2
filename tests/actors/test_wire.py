"""What an OpenAI-compatible server sends is read without trusting it (actors/llm/wire.py):
a reply body is capped while it is read, and a reply of any shape is an LLMReply whose
token counts are counts the bus can keep. Real HTTP servers on loopback."""

from __future__ import annotations

import resource
import socket
import threading

import pytest

from actors.llm.config import LLMConfig, make_llm
from actors.llm.protocol import LLMRequest, LLMUnavailable
from actors.llm.wire import MAX_TOKENS, read_completion
from bus import Bus

from .stub_endpoint import StubEndpoint, completion

HI = LLMRequest(messages=[{"role": "user", "content": "hi"}])


class Flood:
    """Answers with an endless body: announced (Content-Length: 50 GiB) or chunked."""

    def __init__(self, announced: bool):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.announced = announced
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._flood, args=(conn,), daemon=True).start()

    def _flood(self, conn):
        head = "Content-Length: 53687091200" if self.announced else "Transfer-Encoding: chunked"
        chunk = b"a" * 65536
        try:
            conn.recv(65536)
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{head}\r\n\r\n".encode())
            for _ in range(100_000):  # 6.5 GB at most: a reader without a cap would hold all of it
                conn.sendall(chunk if self.announced else b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "chunked"])
def test_an_endless_reply_is_refused_while_it_is_read(announced):
    """The breaker's example: a reply announced as 50 GiB grew the orchestrator by 240 MB/s."""
    flood = Flood(announced)
    try:
        llm = make_llm(LLMConfig(backend="openai", base_url=flood.url, model="m", timeout_s=30, max_retries=2))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with pytest.raises(LLMUnavailable, match="MB"):
            llm.complete(HI)
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert grown_mb < 200, grown_mb
    finally:
        flood.close()


MALFORMED = {
    "no choices": {"choices": []},
    "choices null": {"choices": None},
    "message not an object": {"choices": [{"message": "hello"}]},
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_reply_without_a_message_is_an_empty_malformed_reply(body):
    reply = read_completion(body, "m", "openai", 0.1)
    assert (reply.text, reply.tool_calls, reply.finish_reason) == ("", [], "malformed")


def test_odd_but_readable_shapes_are_read():
    reply = read_completion({"choices": [{"message": {
        "content": [{"type": "text", "text": "part one, "}, {"type": "text", "text": "part two"}, 7],
        "tool_calls": [{"id": "a", "function": {"name": "read_file", "arguments": {"path": "task/x.md"}}},
                       {"id": "b", "function": {"name": None, "arguments": "{}"}},
                       "read_file"]}, "finish_reason": "tool_calls"}]}, "m", "openai", 0.1)
    assert reply.text == "part one, part two"
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("read_file", '{"path": "task/x.md"}')]
    assert read_completion({"choices": [{"message": {"content": "x", "tool_calls": "read_file"}}]},
                           "m", "openai", 0.1).tool_calls == []


@pytest.mark.parametrize("usage, expected", [
    ({"prompt_tokens": -5, "completion_tokens": 10**30, "total_tokens": "x"}, (0, MAX_TOKENS, 0)),
    ({"prompt_tokens": 12.5, "completion_tokens": True, "prompt_tokens_details": {"cached_tokens": 1e400}}, (0, 0, 0)),
    ({"prompt_tokens": 12, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 8}}, (12, 3, 8)),
    ("lots", (0, 0, 0)),
])
def test_token_counts_are_counts(usage, expected):
    reply = read_completion({"choices": [{"message": {"content": "ok"}}], "usage": usage}, "m", "openai", 0.1)
    assert (reply.prompt_tokens, reply.completion_tokens, reply.cached_tokens) == expected


def test_a_call_with_absurd_usage_is_a_row_the_bus_reads_back(tmp_path):
    """The breaker's example: `completion_tokens: 10**30` made the llm_call and agent_end
    rows unreadable; the project looked as if it had never started."""
    from actors.agent import Agent, Subtask

    def respond(body):
        status, payload = completion({"content": '{"tool": "finish", "arguments": {"summary": "done"}}'})
        payload["usage"] = {"prompt_tokens": -5, "completion_tokens": 10**30}
        return status, payload

    bus = Bus(tmp_path / "root")
    bus.create_project("p").as_role("system").write("task/description.md", "d", summary="t")
    with StubEndpoint(respond) as stub:
        llm = make_llm(LLMConfig(backend="openai", base_url=stub.url, model="m", max_retries=0, tool_calling="text"))
        Agent(bus, llm).run("p", Subtask(id="analyst-1", role="analyst", goal="look"))
    kinds = [e["kind"] for e in Bus(tmp_path / "root").project("p").events().to_pylist()]
    assert "llm_call" in kinds and "agent_end" in kinds


def test_an_oversized_reply_fails_the_step_not_the_project(tmp_path):
    """The breaker: a coder's reply carrying a 70 MB write_file ended the whole project
    (exit 70). One unusable reply is now told to the model, which is asked again; only
    replies in a row with nothing usable end the subtask, never the project."""
    from actors.agent import Agent, Subtask
    from actors.llm.protocol import LLMBadReply

    from .stub_endpoint import tool_call

    answers = iter(["huge"] + ["huge", "huge", "read", "finish"] + ["huge"] * 10)

    def respond(body):
        what = next(answers)
        if what == "huge":  # a write_file of 9 MB, sent whole (a server that ignores max_tokens)
            return completion({"tool_calls": [{"id": "c", "type": "function", "function": {
                "name": "write_file", "arguments": '{"path": "analysis/a.md", "content": "' + "x" * (9 * 2**20)
                + '", "summary": "big"}'}}]})
        if what == "read":
            return tool_call(body, "read_file", {"path": "task/description.md"})
        return tool_call(body, "finish", {"summary": "done"})

    bus = Bus(tmp_path / "root")
    proj = bus.create_project("p")
    proj.as_role("system").write("task/description.md", "Classify iris.\n", summary="task")
    with StubEndpoint(respond) as server:
        llm = make_llm(LLMConfig(backend="openai", base_url=server.url, model="stub", timeout_s=30, max_retries=0))
        with pytest.raises(LLMBadReply):  # the error itself, for callers other than an agent
            make_llm(LLMConfig(backend="openai", base_url=server.url, model="stub", timeout_s=30,
                               max_retries=0)).complete(HI)
        result = Agent(bus, llm).run("p", Subtask(id="s1", role="analyst", goal="Read the task"))
        assert result.status == "finished", result.summary  # two unusable replies, then good ones
        result = Agent(bus, llm).run("p", Subtask(id="s2", role="analyst", goal="Read the task"))
        assert result.status == "failed" and "3 unusable or malformed replies" in result.summary
    assert not proj.as_role("viewer").exists("analysis/a.md")
