"""Reading JSON that a model writes into its reply text: tool calls and decisions.

Servers without tool calling, and models under any server, put their JSON into prose,
the way a person would: after a sentence that has braces of its own ("the split is
{train, valid}"), in ``` fences (json or not), several calls in one reply (one after
another, or as a JSON list: the form ``actors.llm.vllm_engine`` replays a turn of
several calls in), after or around a ``<think>...</think>`` block. Taking the text
from its first '{' to its last '}' fails on all of these.

So the text is scanned with the JSON decoder itself (``json.JSONDecoder.raw_decode``)
from every '{' and '[' outside reasoning blocks: a value that decodes is kept and the
scan goes on after its end (braces inside its strings are never looked at again); a
'{' that does not start a value is skipped. What a reasoning block holds is thinking,
not acting: a call inside one is not run.

Exports: ``parse_text_calls`` (the calls in a reply), ``find_object`` (the first object
with a given key: a decision), ``no_call_error`` / ``bad_object_error`` (the
one-line error a model is sent instead, saying what to send), and ``tool_listing``
(the tools, described in the system prompt when the server takes none).
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

from .llm.untrusted import clean

__all__ = ["CALL_FORM", "bad_object_error", "cut_error", "find_object", "json_values", "no_call_error",
           "parse_text_calls", "strip_reasoning", "tool_listing"]

CALL_FORM = '{"tool": name, "arguments": {...}}'

_DECODER = json.JSONDecoder()
_OPEN = re.compile(r"[{\[]")
_TAGS = "think|thinking|reasoning"
_BLOCK = re.compile(rf"<({_TAGS})>.*?(?:</\1>|$)", re.S | re.I)  # unclosed: the reply was cut while thinking
_CLOSE = re.compile(rf"</(?:{_TAGS})>", re.I)


def strip_reasoning(text: str) -> str:
    """``text`` without its reasoning blocks. A closing tag with no opening one means the
    chat template opened the block in the prompt: everything before it is reasoning."""
    text = _BLOCK.sub("", text)
    last_close = None
    for last_close in _CLOSE.finditer(text):
        pass
    return text[last_close.end():] if last_close else text


def json_values(text: str) -> Iterator[Any]:
    """Every outermost JSON object or array in ``text``, in order."""
    i = 0
    while (found := _OPEN.search(text, i)) is not None:
        try:
            value, i = _DECODER.raw_decode(text, found.start())
        except json.JSONDecodeError:
            i = found.start() + 1
            continue
        yield clean(value)  # a "\\ud83d" escape in the JSON is a lone surrogate once decoded


def _as_call(value: Any) -> tuple[str, Any] | None:
    """``{"tool": name, "arguments": ...}``, or the OpenAI/Hermes spelling
    ``{"name": name, "arguments": ...}`` (many chat templates teach it)."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("tool"), str):
        return value["tool"], value.get("arguments", {})
    if isinstance(value.get("name"), str) and "arguments" in value:
        return value["name"], value["arguments"]
    return None


def parse_text_calls(text: str) -> list[tuple[str, Any]]:
    """The tool calls written in ``text``, in order: ``[(name, arguments), ...]``;
    arguments as written (a dict, or a JSON string the tool box parses). [] if none."""
    calls = []
    for value in json_values(strip_reasoning(text)):
        for item in value if isinstance(value, list) else [value]:
            if (call := _as_call(item)) is not None:
                calls.append(call)
    return calls


def find_object(text: str, key: str) -> dict | None:
    """The first JSON object in ``text`` (outside reasoning) that has ``key``."""
    for value in json_values(strip_reasoning(text)):
        if isinstance(value, dict) and key in value:
            return value
    return None


def _decode_error(text: str, key: str) -> str | None:
    """Why the object that seems to start before ``"key"`` does not decode, if one does."""
    at = text.find(f'"{key}"')
    start = text.rfind("{", 0, at) if at >= 0 else -1
    if start < 0:
        return None
    try:
        _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as e:
        return f"{e.msg.removesuffix(' at')} at char {e.pos - start}"
    return None


def bad_object_error(text: str, key: str, form: str, what: str = "JSON object", none: str = "") -> str:
    """One line for a reply that should hold a JSON object with ``key`` but does not:
    why it does not decode, or that it lacks the key, or (``none``) that there is none."""
    text = strip_reasoning(text)
    if why := _decode_error(text, key):
        return (f"your {what} is not valid JSON ({why}): send one JSON object {form}, with every quote and "
                "newline inside a string escaped (\\\" and \\n)")
    if any(True for _ in json_values(text)):
        return f'the JSON in your reply has no "{key}" key: send one JSON object {form}'
    return none or f"no JSON object found: send one JSON object {form}"


def no_call_error(text: str) -> str:
    """One line for a reply with no tool call in its text."""
    return bad_object_error(text, "tool", CALL_FORM, what="tool call", none="no tool call found: call a tool, or "
                            f"write one JSON object {CALL_FORM}; call finish(summary) when done")


def cut_error(max_tokens: int, what: str = "the call") -> str:
    """One line for a reply the server cut at its cap (``finish_reason`` "length")."""
    return (f"your reply was cut at {max_tokens} tokens (the reply limit), so {what} was incomplete and was not run: "
            "write the file shorter, or in parts (several smaller files), and make one call per reply")


def tool_listing(schemas: list[dict]) -> str:
    """How to call tools in the text, and each tool of ``schemas`` (OpenAI function
    schemas) in one line: ``- name(arg, optional?): description``."""
    lines = []
    for t in schemas:
        fn = t["function"]
        params = fn["parameters"]
        args = ", ".join(a if a in params.get("required", ()) else f"{a}?" for a in params.get("properties", {}))
        lines.append(f"- {fn['name']}({args}): {fn['description']}")
    return (f"Call a tool by writing one JSON object {CALL_FORM} in your reply (several, one after another, run in "
            "order)." + ("\nYour tools:\n" + "\n".join(lines) if lines else ""))
