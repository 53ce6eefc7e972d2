"""A model call that failed, as a record and back: so that a replay fails where the
recorded run failed, with the same error.

``to_record(e)`` is what ``RecordingLLM`` keeps in the transcript of a call that raised
(``{"type", "message", "limit_tokens", "prompt_tokens"}``); ``from_record`` rebuilds an
exception the callers handle the same way: the backend's own ``LLMError`` classes
(``LLMContextOverflow`` with its numbers), and for anything else an exception of the
same name (the agent reports "agent error: <name>: <message>" in both runs).
"""

from __future__ import annotations

from .protocol import (
    LLMContextOverflow,
    LLMDeadline,
    LLMError,
    LLMUnavailable,
    RecordingEnded,
    ScriptExhausted,
)

__all__ = ["cause_of", "from_record", "to_record"]

_KNOWN: dict[str, type[Exception]] = {c.__name__: c for c in (LLMError, LLMUnavailable, LLMDeadline, ScriptExhausted,
                                                                   RecordingEnded)}


def cause_of(e: BaseException) -> BaseException:
    """The backend's own exception: a model served by a Ray actor raises it wrapped in
    a task error whose ``cause`` it is (and whose name and text carry a traceback)."""
    cause = getattr(e, "cause", None)
    return cause if isinstance(cause, BaseException) else e


def to_record(e: BaseException) -> dict:
    """The facts of ``e`` (or of its ``cause_of``) a replay needs (JSON-ready)."""
    e = cause_of(e)
    return {"type": type(e).__name__, "message": str(e), "limit_tokens": getattr(e, "limit_tokens", None),
            "prompt_tokens": getattr(e, "prompt_tokens", None)}


def from_record(record: dict) -> Exception:
    """The exception ``record`` (from ``to_record``) describes, to be raised again."""
    name, message = str(record.get("type") or "LLMError"), str(record.get("message") or "")
    if name == LLMContextOverflow.__name__:
        return LLMContextOverflow(message, record.get("limit_tokens"), record.get("prompt_tokens"))
    if name in _KNOWN:
        return _KNOWN[name](message)
    return type(name, (Exception,), {"__module__": __name__})(message)
