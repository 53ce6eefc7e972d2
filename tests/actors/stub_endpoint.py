"""A real local HTTP server speaking the chat-completions API, whose answers a test
writes as a function of the request body (peer case 12's stub, made reusable).

It behaves like ``vllm serve`` on the two points that matter for long outputs and long
prompts: it honours ``max_tokens`` (a tool call longer than 4 characters a token is cut
there and the choice ends with ``finish_reason: "length"``), and it refuses a prompt
over its window with HTTP 400 and vLLM's message.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

CHARS_PER_TOKEN = 4

# What vLLM's OpenAI server answers for a prompt over the window (vllm/entrypoints/openai).
VLLM_OVERFLOW = ("This model's maximum context length is {limit} tokens. However, you requested {asked} tokens "
                 "({prompt} in the messages, {reply} in the completion). Please reduce the length of the messages "
                 "or completion.")


class StubEndpoint:
    """``respond(body) -> (status, payload)``; every request body is kept in ``requests``.
    ``GET /models`` lists ``models`` (vLLM's form, with ``max_model_len``); with ``key``,
    a request without ``Authorization: Bearer <key>`` gets OpenAI's 401."""

    def __init__(self, respond: Callable[[dict], tuple[int, dict]], models: list[dict] | None = None,
                 key: str | None = None):
        self.requests: list[dict] = []
        outer = self
        listing = {"object": "list", "data": [{"object": "model", "owned_by": "vllm", **m}
                                              for m in (models or [{"id": "stub", "max_model_len": 16384}])]}

        class Handler(BaseHTTPRequestHandler):
            def _refused(self) -> bool:
                if key is None or self.headers.get("Authorization") == f"Bearer {key}":
                    return False
                self._send(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                           "code": "invalid_api_key"}})
                return True

            def do_GET(self):
                if not self._refused():
                    self._send(200, listing) if self.path.endswith("/models") else self._send(404, {"detail": "Not Found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self._refused():
                    return
                outer.requests.append(body)
                self._send(*respond(body))

            def _send(self, status: int, payload: dict):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> "StubEndpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()


# What `vllm serve` without --enable-auto-tool-choice answers to a request carrying tools.
VLLM_NO_TOOLS = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'


def no_tools(body: dict) -> tuple[int, dict] | None:
    """vLLM's 400 for a request with tools, or None if it has none."""
    if not body.get("tools"):
        return None
    return 400, {"object": "error", "type": "BadRequestError", "code": 400, "param": None, "message": VLLM_NO_TOOLS}


def prompt_chars(body: dict) -> int:
    return sum(len(json.dumps(m)) for m in body["messages"])


def completion(message: dict, finish_reason: str = "stop", prompt_tokens: int = 100) -> tuple[int, dict]:
    return 200, {"id": "x", "object": "chat.completion", "created": 0, "model": "stub",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": None, **message},
                              "finish_reason": finish_reason}],
                 "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 100,
                           "total_tokens": prompt_tokens + 100}}


def overflow(body: dict, limit_tokens: int) -> tuple[int, dict]:
    prompt = prompt_chars(body) // CHARS_PER_TOKEN
    reply = body.get("max_tokens") or 0
    return 400, {"object": "error", "type": "BadRequestError", "code": 400, "param": None,
                 "message": VLLM_OVERFLOW.format(limit=limit_tokens, asked=prompt + reply, prompt=prompt, reply=reply)}


def tool_call(body: dict, name: str, arguments: dict, call_id: str = "call_0") -> tuple[int, dict]:
    """A tool call as a server that honours ``max_tokens`` sends it: cut, if too long."""
    args, finish = json.dumps(arguments), "tool_calls"
    limit = CHARS_PER_TOKEN * (body.get("max_tokens") or 10**9)
    if len(args) > limit:
        args, finish = args[:limit], "length"
    return completion({"tool_calls": [{"id": call_id, "type": "function",
                                       "function": {"name": name, "arguments": args}}]}, finish,
                      prompt_chars(body) // CHARS_PER_TOKEN)


def over_chars(chars: int) -> Callable[[dict], bool]:
    """Peer case 12's window: a prompt over ``chars`` characters (of JSON messages)."""
    return lambda body: prompt_chars(body) > chars


def over_tokens(tokens: int) -> Callable[[dict], bool]:
    """vLLM's window: prompt tokens (4 characters each) plus max_tokens over ``tokens``."""
    return lambda body: prompt_chars(body) // CHARS_PER_TOKEN + (body.get("max_tokens") or 0) > tokens


def coder_model(code: str, revisions: int, refuse: Callable[[dict], bool] = lambda body: False,
                limit_tokens: int = 16384):
    """Peer case 12's model: writes ``code`` (``# revision n`` appended) ``revisions``
    times to code/train.py, then finishes; a request that ``refuse`` holds over the
    window gets vLLM's 400 (a window of ``limit_tokens``)."""

    def respond(body: dict) -> tuple[int, dict]:
        if refuse(body):
            return overflow(body, limit_tokens)
        done = sum(1 for m in body["messages"] if m["role"] == "assistant")
        if done >= revisions:
            return tool_call(body, "finish", {"summary": "wrote code/train.py"}, f"call_{done}")
        return tool_call(body, "write_file", {"path": "code/train.py", "content": code + f"# revision {done}\n",
                                              "summary": f"revision {done}"}, f"call_{done}")

    return respond


# Peer case 12's script: ~20 KB, ~5,000 tokens.
CODE = "".join(f"feature_{i} = df['c{i}'].fillna(0) * {i}  # engineered feature number {i}\n" for i in range(260))
