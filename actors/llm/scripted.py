"""A deterministic model that replays given replies: for tests and for replaying a
recorded run (``ScriptedLLM.from_bus``, ``aisci replay``). An entry
``{"error": {...}}`` (``actors.llm.failures``) raises that error instead of replying:
a recorded call that failed fails again."""

from __future__ import annotations

import json
import threading
import time
from typing import Iterable

from .failures import from_record
from .protocol import LLMReply, LLMRequest, RecordingEnded, ScriptExhausted, ToolCall
from .record import recorded_calls, replay_entry


def reply(text: str = "", calls: Iterable[tuple[str, dict | str]] = (), finish_reason: str = "") -> LLMReply:
    """A scripted reply: text and/or tool calls ``(name, arguments)``; a ``str``
    argument is passed through unparsed (to script malformed calls); ``finish_reason``
    "length" scripts a reply the server cut at its ``max_tokens``."""
    tool_calls = [
        ToolCall(id=f"call_{i}", name=name, arguments=args if isinstance(args, str) else json.dumps(args))
        for i, (name, args) in enumerate(calls)
    ]
    return LLMReply(text=text, tool_calls=tool_calls, finish_reason=finish_reason)


class ScriptedLLM:
    """Returns its replies in order, one per request; token counts are estimated
    (4 characters a token) so budgets and accounting work as with a real model."""

    name = "scripted"

    def __init__(self, replies: Iterable[LLMReply | dict] | dict[str, Iterable[LLMReply | dict]],
                 model: str = "scripted", by_step: bool = False, recording: bool = False):
        # One script, or one per tag (subtask id), so that concurrent subtasks sharing
        # this model each get their own replies in order, deterministically.
        scripts = replies if isinstance(replies, dict) else {"": replies}
        self._scripts = {tag: [_entry(r) for r in rs] for tag, rs in scripts.items()}
        self._next: dict[str, int] = {tag: 0 for tag in self._scripts}
        self._lock = threading.Lock()
        self.model = model
        # by_step: the reply is picked by the request's step (its number of assistant
        # messages), not by a counter, so one model serves any number of projects and a
        # re-dispatched subtask replays its script from the start.
        self.by_step = by_step
        # recording: the replies are a recorded project's calls, so a request past their
        # end is one the recorded project never made: it had stopped there (its budget
        # ended between two calls, which a replay at full speed does not reach).
        self.recording = recording
        self.requests: list[LLMRequest] = []

    @property
    def remaining(self) -> int:
        return sum(len(rs) - self._next[t] for t, rs in self._scripts.items())

    def complete(self, request: LLMRequest) -> LLMReply:
        tag = request.tag if request.tag in self._scripts else ""
        with self._lock:
            script = self._scripts.get(tag, [])
            if self.by_step:
                self._next[tag] = sum(1 for m in request.messages if m["role"] == "assistant")
            if self._next.get(tag, 0) >= len(script):
                if self.recording:
                    raise RecordingEnded(
                        f"the recording of {request.tag or 'the default script'!r} ends after {len(script)} calls: "
                        "the recorded project stopped there (most often its wall-clock budget ended)")
                raise ScriptExhausted(
                    f"the scripted model has no reply left for {request.tag or 'the default script'!r} "
                    f"(it was given {len(script)}); add replies to the script"
                )
            out = script[self._next[tag]].model_copy()
            self._next[tag] += 1
            self.requests.append(request)
        if isinstance(out, _Failure):
            time.sleep(out.latency_s)
            raise from_record(out.error)
        if out.latency_s:  # a scripted "thinking time", to test what happens meanwhile
            time.sleep(out.latency_s)
        prompt_chars = sum(len(str(m.get("content") or "")) for m in request.messages)
        out.prompt_tokens = out.prompt_tokens or prompt_chars // 4 + 1
        out.completion_tokens = out.completion_tokens or (len(out.text) + sum(len(c.arguments) for c in out.tool_calls)) // 4 + 1
        out.model, out.backend = self.model, "scripted"
        return out

    @classmethod
    def from_bus(cls, view, instance: str | None = None, realtime: bool = False) -> "ScriptedLLM":
        """Replay the calls recorded on a project (``actors.llm.record``), in order;
        optionally only those of one agent instance. A failed call raises its error
        again; recorded latencies are slept only with ``realtime``."""
        return cls([replay_entry(call, realtime) for call in recorded_calls(view, instance)], model="replay", recording=True)


class _Failure(LLMReply):
    """A scripted entry that raises ``error`` (a ``failures.to_record`` dict)."""

    error: dict


def _entry(r: LLMReply | dict) -> LLMReply:
    if isinstance(r, LLMReply):
        return r
    return _Failure.model_validate(r) if "error" in r else LLMReply.model_validate(r)
