"""What an OpenAI-compatible server sends, read without trusting it.

A server is as untrusted as its model. Two things are checked here, where its bytes
enter, so that nothing downstream has to:

- **Size.** A reply body larger than ``MAX_REPLY_BYTES`` is refused while it is read
  (``CappedTransport``): a server that announced 50 GiB and streamed it grew the
  orchestrator's actor by 240 MB/s until the node ran out of memory.
- **Shape.** ``read_completion`` takes the JSON body as it came, not the client's
  objects (which are built without validation): missing or empty ``choices``, a
  ``content`` given as a list of parts (several servers do), ``tool_calls`` that are
  not a list, ``arguments`` sent as an object, a call without a name, and token
  counts that are negative, fractional, text or beyond any real prompt. A reply that
  cannot be read is an empty one with ``finish_reason`` "malformed" (the agent tells
  the model it sent no call, and the step is spent, never the subtask); token counts
  that are not counts are 0, and counts are capped at ``MAX_TOKENS``, so every row
  the bus writes of them can be read back.
"""

from __future__ import annotations

import json
from typing import Any

try:  # the HTTP library the openai client is built on: httpx2 from openai 3 on, httpx before
    import httpx2 as httpx
except ImportError:  # pragma: no cover - older openai
    import httpx

from .protocol import LLMReply, ToolCall

__all__ = ["CappedTransport", "MAX_REPLY_BYTES", "MAX_TOKENS", "ReplyTooLarge", "read_completion"]

MAX_REPLY_BYTES = 8 * 2**20  # a reply of 100k tokens of JSON is ~1 MB: eight times that is no model's
MAX_TOKENS = 10**9  # more tokens than any context window holds, in one call


class ReplyTooLarge(Exception):
    """The server sent (or announced) more than ``MAX_REPLY_BYTES``."""


class _CappedStream(httpx.SyncByteStream):
    def __init__(self, stream: httpx.SyncByteStream, cap: int):
        self._stream, self._cap = stream, cap

    def __iter__(self):
        seen = 0
        for chunk in self._stream:
            seen += len(chunk)
            if seen > self._cap:
                raise ReplyTooLarge(f"the reply was larger than {self._cap // 2**20} MB")
            yield chunk

    def close(self) -> None:
        self._stream.close()


class CappedTransport(httpx.HTTPTransport):
    """httpx's transport, with every response body capped at ``cap`` bytes."""

    def __init__(self, cap: int = MAX_REPLY_BYTES, **kwargs: Any):
        super().__init__(**kwargs)
        self._cap = cap

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self._cap:
            response.close()
            raise ReplyTooLarge(f"the server announced a reply of {int(length) // 2**20} MB "
                                f"(more than {self._cap // 2**20} MB)")
        response.stream = _CappedStream(response.stream, self._cap)
        return response


def _count(value: Any) -> int:
    """A token count as the server gave it, if it is one (else 0), capped."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return min(value, MAX_TOKENS)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _calls(raw: Any) -> list[ToolCall]:
    calls = []
    for i, c in enumerate(raw if isinstance(raw, list) else []):
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            continue  # no name: nothing to call
        arguments = fn.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments) if isinstance(arguments, (dict, list)) else ""
        call_id = c.get("id") if isinstance(c.get("id"), str) and c.get("id") else f"call_{i}"
        calls.append(ToolCall(id=call_id, name=fn["name"], arguments=arguments))
    return calls


def read_completion(body: Any, model: str, backend: str, latency_s: float) -> LLMReply:
    """An ``LLMReply`` from a chat-completion body (the decoded JSON), whatever its shape."""
    body = body if isinstance(body, dict) else {}
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    counts = {"prompt_tokens": _count(usage.get("prompt_tokens")),
              "completion_tokens": _count(usage.get("completion_tokens")),
              "cached_tokens": _count(details.get("cached_tokens"))}
    name = body.get("model") if isinstance(body.get("model"), str) and body.get("model") else model
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    message = choice.get("message") if choice is not None else None
    if not isinstance(message, dict):
        return LLMReply(text="", model=name, backend=backend, latency_s=latency_s, finish_reason="malformed",
                        **counts)
    finish = choice.get("finish_reason")
    return LLMReply(text=_text(message.get("content")), tool_calls=_calls(message.get("tool_calls")), model=name,
                    backend=backend, latency_s=latency_s, finish_reason=finish if isinstance(finish, str) else "",
                    **counts)
