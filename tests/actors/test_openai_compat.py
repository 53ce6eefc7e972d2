"""The OpenAI-compatible backend against a real local HTTP server speaking that API."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from actors.agent import Agent, Subtask
from actors.llm.config import LLMConfig, make_llm
from actors.llm.protocol import LLMRequest, LLMUnavailable


class FakeEndpoint:
    """A tiny chat-completions server: fails `fail_first` requests with `status`, then
    answers from `answers` (each an assistant message dict) in order."""

    def __init__(self, answers, fail_first=0, status=429):
        self.answers, self.fail_first, self.status = list(answers), fail_first, status
        self.requests, self.headers = [], []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                if len(outer.requests) <= outer.fail_first:
                    self.send_response(outer.status)
                    self.send_header("retry-after-ms", "10")
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "slow down"}}')
                    return
                message = outer.answers.pop(0)
                data = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107,
                                  "prompt_tokens_details": {"cached_tokens": 64}}}
                payload = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def tool_call(name, args, i=0):
    return {"content": None, "tool_calls": [{"id": f"c{i}", "type": "function",
                                             "function": {"name": name, "arguments": json.dumps(args)}}]}


def test_retries_on_429_then_parses_tool_calls_and_usage(monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "sk-abc-123456789")
    server = FakeEndpoint([tool_call("read_file", {"path": "task/description.md"})], fail_first=2)
    try:
        llm = make_llm(LLMConfig(backend="openai", base_url=server.url, model="m1", api_key_env="TEST_LLM_KEY"))
        out = llm.complete(LLMRequest(messages=[{"role": "user", "content": "hi"}]))
    finally:
        server.close()
    assert len(server.requests) == 3  # two 429s, then the answer
    assert out.tool_calls[0].name == "read_file" and json.loads(out.tool_calls[0].arguments)["path"] == "task/description.md"
    assert (out.prompt_tokens, out.completion_tokens, out.cached_tokens, out.backend) == (100, 7, 64, "openai")
    assert server.headers[0]["authorization"] == "Bearer sk-abc-123456789"


def test_unreachable_endpoint_and_final_errors_are_clear():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = make_llm(LLMConfig(backend="openai", base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1,
                             timeout_s=2))
    with pytest.raises(LLMUnavailable, match="could not reach .* is the server running"):
        llm.complete(LLMRequest(messages=[{"role": "user", "content": "hi"}]))
    server = FakeEndpoint([], fail_first=99, status=404)
    try:
        llm = make_llm(LLMConfig(backend="openai", base_url=server.url, model="m", max_retries=1))
        with pytest.raises(LLMUnavailable, match="HTTP 404"):
            llm.complete(LLMRequest(messages=[{"role": "user", "content": "hi"}]))
    finally:
        server.close()
    with pytest.raises(LLMUnavailable, match="needs a base URL"):
        make_llm(LLMConfig(backend="openai"))


def test_the_agent_loop_over_the_endpoint(bus):
    bus.create_project("iris").as_role("system").write("task/description.md", "Classify iris.\n")
    server = FakeEndpoint([
        tool_call("read_file", {"path": "task/description.md"}),
        tool_call("write_file", {"path": "analysis/t.md", "content": "iris", "summary": "task"}, 1),
        tool_call("finish", {"summary": "done"}, 2),
    ])
    try:
        llm = make_llm(LLMConfig(backend="openai", base_url=server.url, model="m1"))
        result = Agent(bus, llm).run("iris", Subtask(id="o1", role="analyst", goal="understand"))
    finally:
        server.close()
    assert (result.status, result.files_written, result.prompt_tokens) == ("finished", ["analysis/t.md"], 300)
    # The analyst's tools as its role defines them; `run` only where an executor is given (none here).
    assert [t["function"]["name"] for t in server.requests[0]["tools"]] == [
        "list_files", "read_file", "search_files", "write_file", "edit_file", "copy_file", "append_log", "finish"]
    # The tool result went back as an OpenAI tool message answering the call's id.
    assert server.requests[1]["messages"][-1] == {"role": "tool", "tool_call_id": "c0", "content": "Classify iris.\n"}
