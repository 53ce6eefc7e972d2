"""Keeping an invocation's message list within its context budget.

Old tool output is cut first (oldest first, the last few messages kept whole), then
old assistant text. Nothing is lost: tool output is file content, and every file is
on the bus; the cut message says so, so the model can re-read it.
"""

from __future__ import annotations

import json

_KEEP_LAST = 4
_STUB = "[cut to fit the context: {n} characters; everything is on the bus, re-read the file if you need it]"


def size(messages: list[dict]) -> int:
    return sum(len(str(m.get("content") or "")) + sum(len(c["function"]["arguments"]) for c in m.get("tool_calls") or [])
               for m in messages)


def fit(messages: list[dict], budget_chars: int) -> int:
    """Cut old messages in place until ``messages`` fit; returns how many were cut."""
    cut = 0
    for kinds in (("tool",), ("tool", "user", "assistant")):
        for m in messages[1:-_KEEP_LAST]:  # never the system prompt, never the latest exchange
            if size(messages) <= budget_chars:
                return cut
            content = str(m.get("content") or "")
            if m["role"] in kinds and len(content) > 200 and not content.startswith("[cut to fit"):
                m["content"] = _STUB.format(n=len(content)) + "\n" + content[:120]
                cut += 1
    return cut


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
