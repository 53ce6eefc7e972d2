"""Every LLM call is an event on the bus, and its full request and reply a file there.

The event (kind ``llm_call``) carries role, instance, prompt/completion/cached tokens,
latency and the model (``backend/name``, a column: tokens are accounted per model);
the file ``logs/llm/<instance>/<seq>.json`` keeps the exact request and reply: the
audit trail of who decided what, and the input of replays (``recorded_script``,
``ScriptedLLM.from_bus``). A call that raised is recorded too (event status
``failed``, the transcript's ``error`` instead of a ``reply``) and raised again, so that
a replay of a crashed run fails at the same point. Secrets (API keys, any value of an
environment variable whose name looks like a secret) are redacted before anything is
written.
"""

from __future__ import annotations

import json
import os
import re
import time

from .failures import to_record
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
        """The backend's reply, recorded. Raises what the backend raises, recorded first."""
        t0 = time.perf_counter()
        try:
            reply = self.llm.complete(request)
        except Exception as e:
            latency_s = time.perf_counter() - t0
            event = self.view.record("llm_call", f"failed: {type(e).__name__}: {str(e)[:300]}", status="failed",
                                     model=self._model(), metrics={"latency_s": latency_s})
            self._transcript(event, {"request": request.model_dump(), "error": to_record(e), "latency_s": latency_s})
            raise
        reply.latency_s = time.perf_counter() - t0  # the model's own time (for a remote one, the round trip)
        event = self.view.record(
            "llm_call",
            f"{reply.backend}/{reply.model}: {len(reply.tool_calls)} tool calls, {len(reply.text)} chars",
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            model=f"{reply.backend}/{reply.model}",
            metrics={"latency_s": reply.latency_s, "cached_tokens": float(reply.cached_tokens)},
        )
        self._transcript(event, {"request": request.model_dump(), "reply": reply.model_dump()})
        return reply

    def _model(self) -> str:
        """backend/name, as far as this side knows it (for a call that got no reply)."""
        config = getattr(self.llm, "config", None)
        return f"{self.name}/{getattr(self.llm, 'model', '') or getattr(config, 'model', '')}"

    def _transcript(self, event: dict, content: dict) -> None:
        instance = self.view.instance
        transcript = json.dumps(content, indent=1)
        self.system.write(
            f"logs/llm/{_safe(instance)}/{event['seq']:08d}.json",
            redact(transcript, self._secrets),
            summary=f"LLM call of {instance}",
            derived_from=[event["seq"]],
        )


def _safe(instance: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", instance)


def recorded_calls(view, instance: str | None = None) -> list[dict]:
    """The recorded calls of a project (optionally of one agent instance), in order:
    ``{"request": ..., "reply": ...}``, or ``{"request": ..., "error": ...}`` for a call
    that raised."""
    paths = [p for p in view.list("logs/llm") if instance is None or p.startswith(f"logs/llm/{_safe(instance)}/")]
    calls = [json.loads(view.read(p)) for p in paths]
    order = [int(p.rsplit("/", 1)[1].split(".")[0]) for p in paths]
    return [c for _, c in sorted(zip(order, calls), key=lambda x: x[0])]


def replay_entry(call: dict, realtime: bool = False) -> dict:
    """A recorded call as a scripted model's entry: its reply, or its ``error`` (raised
    when replayed); without ``realtime``, no recorded latency (a replay at full speed)."""
    latency = float(call.get("latency_s") or call.get("reply", {}).get("latency_s") or 0.0) if realtime else 0.0
    if "error" in call:
        return {"error": call["error"], "latency_s": latency}
    return {**call["reply"], "latency_s": latency}


def recorded_script(view, realtime: bool = False) -> dict[str, list[dict]]:
    """A project's recorded calls as a script for ``ScriptedLLM`` (``LLMConfig.script``):
    one list per request tag (the subtask id, or "orchestrator"), in the order they were
    made, so concurrent subtasks replay deterministically. {} if nothing was recorded."""
    script: dict[str, list[dict]] = {}
    for call in recorded_calls(view):
        script.setdefault(call["request"].get("tag", ""), []).append(replay_entry(call, realtime))
    return script
