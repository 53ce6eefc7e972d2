"""What a server can do, asked of it at start; the agent loop then uses native tool
calls or JSON calls in the text. Against a real local HTTP server behaving like
`vllm serve` (with and without --enable-auto-tool-choice)."""

import json
import socket

import pytest

from actors.agent import Agent, Subtask
from actors.llm.capabilities import ServerCheckFailed, check_server
from actors.llm.config import LLMConfig, make_llm
from actors.llm.protocol import LLMUnavailable

from .stub_endpoint import StubEndpoint, completion, no_tools

MODELS = [{"id": "smol", "max_model_len": 4096}, {"id": "other", "max_model_len": 2048}]


def text_model(body):
    """A model that writes its calls as JSON in the text; refuses tools like vllm serve without tool calling."""
    if (refused := no_tools(body)) is not None:
        return refused
    done = sum(1 for m in body["messages"] if m["role"] == "assistant")
    call = {"tool": "read_file", "arguments": {"path": "task/description.md"}} if done == 0 else \
        {"tool": "finish", "arguments": {"summary": "read the task"}}
    return completion({"content": f"I will do this:\n```json\n{json.dumps(call)}\n```"})


def config(url, **kw):
    return LLMConfig(backend="openai", base_url=url, model="smol", max_retries=0, **kw)


def test_a_server_without_tool_calling_gets_calls_in_the_text(bus):
    bus.create_project("p").as_role("system").write("task/description.md", "Classify iris.\n")
    with StubEndpoint(text_model, models=MODELS) as server:
        # The issue: every agent request carried tools, and the server answered HTTP 400.
        with pytest.raises(LLMUnavailable, match="HTTP 400"):
            Agent(bus, make_llm(config(server.url))).run("p", Subtask(id="a0", role="analyst", goal="look"))
        llm_config, caps = check_server(config(server.url))
        probes = len(server.requests)
        result = Agent(bus, make_llm(llm_config), window=llm_config.window(),
                       text_tools=llm_config.tool_calling == "text").run(
            "p", Subtask(id="a1", role="analyst", goal="look"))
    assert (llm_config.tool_calling, llm_config.context_tokens, caps.tools) == ("text", 4096, False)
    assert "--enable-auto-tool-choice" in caps.tools_error
    assert (result.status, result.summary) == ("finished", "read the task")
    sent = server.requests[probes:]
    assert sent and not any("tools" in body for body in sent)
    system = sent[0]["messages"][0]["content"]
    assert '{"tool": name, "arguments": {...}}' in system and "- read_file(path, start?, end?):" in system
    assert "Classify iris." in sent[1]["messages"][-1]["content"]  # the call in the text ran


def test_a_server_with_tool_calling_keeps_native_calls_and_a_set_window_wins():
    with StubEndpoint(lambda body: completion({"content": "pong"}), models=MODELS) as server:
        llm_config, caps = check_server(config(server.url, context_tokens=2000))
        assert (llm_config.tool_calling, llm_config.context_tokens, caps.context_tokens) == ("native", 2000, 4096)
        assert server.requests[0]["tools"][0]["function"]["name"] == "ping"
        assert check_server(config(server.url, tool_calling="text"))[0].tool_calling == "text"  # forced


def test_what_to_change_when_the_server_cannot_serve(monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ServerCheckFailed, match=r"cannot reach http://127.0.0.1:\d+/v1 .*--base-url"):
        check_server(config(f"http://127.0.0.1:{port}/v1"), timeout_s=2)
    with StubEndpoint(text_model, models=MODELS) as server:
        with pytest.raises(ServerCheckFailed, match="does not serve the model 'smoll'; it serves smol, other: use "
                                                    "--model openai:smol"):
            check_server(config(server.url).model_copy(update={"model": "smoll"}))
        with pytest.raises(ServerCheckFailed, match="refuses requests with tools .*--tool-calling text"):
            check_server(config(server.url, tool_calling="native"))
    monkeypatch.setenv("AISCI_TEST_KEY", "sk-wrong-123456")
    with StubEndpoint(text_model, models=MODELS, key="sk-right-654321") as server:
        with pytest.raises(ServerCheckFailed, match=r"refused the key \(HTTP 401.*\$AISCI_TEST_KEY is set.*--api-key-env"):
            check_server(config(server.url, api_key_env="AISCI_TEST_KEY"))


def test_a_server_that_drips_its_answer_fails_the_check_within_its_limit():
    """The breaker's server listed its models, then sent one space every 0.5 s to the
    tool probe: `aisci run` printed nothing for over 10 minutes (the client's timeout is
    per read). The whole check now has a limit, and says so in one line."""
    import threading
    import time

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    url = f"http://127.0.0.1:{listening.getsockname()[1]}/v1"
    models = json.dumps({"object": "list", "data": [{"id": "smol", "object": "model"}]}).encode()

    def serve(conn):
        try:
            request = conn.recv(65536)
            if b"GET /v1/models" in request:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(models)).encode() + b"\r\n\r\n" + models)
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
            for _ in range(600):  # 5 minutes of a space every half second
                conn.sendall(b" ")
                time.sleep(0.5)
        except OSError:
            pass
        finally:
            conn.close()

    def accept():
        while True:
            try:
                conn, _ = listening.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        t0 = time.monotonic()
        with pytest.raises(ServerCheckFailed, match=r"no complete answer to the start-up check within 3 s"):
            check_server(config(url), timeout_s=2, limit_s=3)
        assert time.monotonic() - t0 < 10
    finally:
        listening.close()
