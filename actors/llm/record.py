"""Every LLM call is an event on the bus, and its full request and reply a file there.

The event (kind ``llm_call``) carries role, instance, prompt/completion/cached tokens,
latency, backend and model; the file ``logs/llm/<instance>/<seq>.json`` keeps the exact
request and reply: the audit trail of who decided what, and the input of
``ScriptedLLM.from_bus`` for deterministic replays. Secrets (API keys, any value of
an environment variable whose name looks like a secret) are redacted before
anything is written.
"""

from __future__ import annotations

import json
import os
import re
import time

from .protocol import LLM, LLMReply, LLMRequest

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.I)
_REDACTED = "[redacted]"


def is_secret_name(name: str) -> bool:
    """An environment variable whose name says it holds a credential."""
    return bool(_SECRET_NAME.search(name))


def secret_values(extra: tuple[str, ...] = ()) -> list[str]:
    """Values that must never reach the bus: secret-looking environment variables."""
    values = [v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= 8]
    return sorted(set(values) | {v for v in extra if v}, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for value in secrets:
        text = text.replace(value, _REDACTED)
    return text


class RecordingLLM:
    """Wraps a backend; records each call on the bus through ``view`` (the agent's
    scoped view, for attribution) and ``system`` (to write the transcript file)."""

    def __init__(self, llm: LLM, view, system, secrets: tuple[str, ...] = ()):
        self.llm, self.view, self.system = llm, view, system
        self.name = getattr(llm, "name", "llm")
        self._secrets = secret_values(secrets)

    def complete(self, request: LLMRequest) -> LLMReply:
        t0 = time.perf_counter()
        reply = self.llm.complete(request)
        reply.latency_s = time.perf_counter() - t0  # the model's own time (for a remote one, the round trip)
        instance = self.view.instance
        event = self.view.record(
            "llm_call",
            f"{reply.backend}/{reply.model}: {len(reply.tool_calls)} tool calls, {len(reply.text)} chars",
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            metrics={"latency_s": reply.latency_s, "cached_tokens": float(reply.cached_tokens)},
        )
        transcript = json.dumps({"request": request.model_dump(), "reply": reply.model_dump()}, indent=1)
        self.system.write(
            f"logs/llm/{_safe(instance)}/{event['seq']:08d}.json",
            redact(transcript, self._secrets),
            summary=f"LLM call of {instance}",
            derived_from=[event["seq"]],
        )
        return reply


def _safe(instance: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", instance)


def recorded_calls(view, instance: str | None = None) -> list[dict]:
    """The recorded calls of a project (optionally of one agent instance), in order."""
    paths = [p for p in view.list("logs/llm") if instance is None or p.startswith(f"logs/llm/{_safe(instance)}/")]
    calls = [json.loads(view.read(p)) for p in paths]
    order = [int(p.rsplit("/", 1)[1].split(".")[0]) for p in paths]
    return [c for _, c in sorted(zip(order, calls), key=lambda x: x[0])]
