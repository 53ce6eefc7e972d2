"""Keeping an invocation's message list within its context budget.

What is cut, oldest first, until the list fits:

1. outside the last few messages: tool output (file content read from the bus) and the
   long arguments of tool calls (the content a ``write_file`` sent: a coder that
   rewrites a 20 KB script eight times carried 151,405 characters against a 48,000
   budget when only tool output was cut);
2. outside the last few messages: any text, the model's and ours;
3. the long arguments of the latest calls too: they ran, and what they wrote is on
   the bus. The latest message (the result the model is about to read) stays whole.

Nothing is lost: every file read or written is on the bus, and each stub says where.
A shortened call stays a valid call (a JSON object of its arguments, a long string
replaced by a stub), since servers parse every call echoed in the history.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .llm.protocol import ContextWindow, LLMContextOverflow

__all__ = ["Limits", "after_overflow", "budget", "echo_arguments", "fit", "is_object", "size"]

_KEEP_LAST = 4
_LONG = 200  # characters: shorter text and arguments are left alone
_CUT = "[cut to fit the context"
_STUB = _CUT + ": {n} characters; everything is on the bus, re-read the file if you need it]"
_VERSION = re.compile(r"\(version (\d+)")


def size(messages: list[dict]) -> int:
    """Characters of text and of tool-call arguments: what a budget counts."""
    return sum(_size(m) for m in messages)


def _size(m: dict) -> int:
    return len(str(m.get("content") or "")) + sum(len(c["function"]["arguments"]) for c in m.get("tool_calls") or [])


@dataclass
class Limits:
    """What one request may hold: the prompt, in characters (``size``), and the reply, in tokens."""

    prompt_chars: int
    reply_tokens: int


def budget(role_chars: int, reply_tokens: int, window: ContextWindow | None, overhead_chars: int = 0) -> Limits:
    """The limits of a role whose own budget is ``role_chars`` and cap ``reply_tokens``,
    under the model's ``window`` (None: unknown, the role's apply). The reply gets at
    most half the window; the prompt what is left, less ``overhead_chars`` (the tool
    schemas sent beside it)."""
    if window is None:
        return Limits(role_chars, reply_tokens)
    reply_tokens = min(reply_tokens, window.tokens // 2)
    return Limits(max(1000, min(role_chars, window.prompt_chars(reply_tokens) - overhead_chars)), reply_tokens)


def after_overflow(size_chars: int, limits: Limits, error: LLMContextOverflow) -> Limits:
    """Lower limits, after a prompt of ``size_chars`` was refused as over the window:
    scaled by what the server said fits (with a tenth to spare), else halved; at most
    70 % of the refused size, since the estimate that let it through was wrong once."""
    limit, prompt = getattr(error, "limit_tokens", None), getattr(error, "prompt_tokens", None)
    reply_tokens = min(limits.reply_tokens, limit // 2) if limit else limits.reply_tokens
    share = (limit - reply_tokens) / prompt if limit and prompt else 0.5
    return Limits(min(limits.prompt_chars, int(size_chars * max(0.1, min(0.9 * share, 0.7)))), reply_tokens)


def fit(messages: list[dict], budget_chars: int, keep_last: int = _KEEP_LAST) -> int:
    """Cut messages in place until ``size(messages) <= budget_chars`` (or nothing is left
    to cut: the system prompt and the latest message are never cut); returns the number
    of cuts made. ``keep_last``: the newest messages whose text is kept."""
    tail = max(1, len(messages) - keep_last)
    old, recent = range(1, tail), range(tail, len(messages) - 1)
    passes = ((old, ("tool", "calls")), (old, ("tool", "calls", "user", "assistant")), (recent, ("calls",)))
    total, cut = size(messages), 0
    for span, kinds in passes:
        for i in span:
            if total <= budget_chars:
                return cut
            saved = _shorten(messages, i, kinds)
            total, cut = total - saved, cut + bool(saved)
    return cut


def _shorten(messages: list[dict], i: int, kinds: tuple[str, ...]) -> int:
    """Shorten message ``i`` as ``kinds`` allow; returns the characters saved."""
    m = messages[i]
    before = _size(m)
    content = str(m.get("content") or "")
    if m["role"] in kinds and len(content) > _LONG and not content.startswith(_CUT):
        m["content"] = _STUB.format(n=len(content)) + "\n" + content[:120]
    if "calls" in kinds and m.get("tool_calls"):
        # The calls' results are the tool messages right after (ids need not be unique
        # across turns: a scripted model reuses them).
        results = [str(r.get("content") or "") for r in messages[i + 1:i + 1 + len(m["tool_calls"])]
                   if r["role"] == "tool"]
        results += [""] * (len(m["tool_calls"]) - len(results))
        # New dicts, not edits: a request already sent (and recorded) shares these.
        m["tool_calls"] = [{**c, "function": {**c["function"], "arguments": _short_arguments(
            c["function"]["arguments"], result)}} for c, result in zip(m["tool_calls"], results)]
    return before - _size(m)


def _short_arguments(arguments: str, result: str) -> str:
    """A call's arguments with each long string replaced by a stub saying where it is
    on the bus (the path, and the version the tool's result reported)."""
    if len(arguments) <= _LONG:
        return arguments
    try:
        args = json.loads(arguments)
    except json.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        return json.dumps({"not_json": f"{_CUT}: {len(arguments)} characters that were not a JSON object]"})
    where = ""
    if isinstance(args.get("path"), str):
        version = _VERSION.search(result)
        where = f"; it is on the bus at {args['path']}" + (f", version {version.group(1)}" if version else "")
    return json.dumps({k: f"{_CUT}: {len(v)} characters{where}]" if isinstance(v, str) and len(v) > _LONG and
                       not v.startswith(_CUT) else v for k, v in args.items()})


def is_object(arguments: str) -> bool:
    """``arguments`` (a call's, as the model wrote them) is one JSON object."""
    try:
        return isinstance(json.loads(arguments or "{}"), dict)
    except json.JSONDecodeError:
        return False


def echo_arguments(arguments: str) -> str:
    """A call's arguments as they go back to the server in the history: as written if
    they are a JSON object, else a stub that is one. vLLM's server parses every echoed
    call's arguments (and so does ``template_messages``): one malformed call (a reply cut
    at its cap, say) would make every later request of the subtask fail."""
    if is_object(arguments):
        return arguments
    return json.dumps({"not_json": f"{len(arguments)} characters that were not a JSON object: {arguments[:80]}"})
