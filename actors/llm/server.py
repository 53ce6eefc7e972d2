"""One LLM per cluster, as a named Ray actor that every agent of every project shares.

For vLLM this is what makes prefix caching pay off (all re-grounding prompts reach one
engine) and what gives the engine its GPUs from Ray (``num_gpus`` 0: the CPU engine,
which must not ask Ray for a GPU, or it is never placed); for a scripted model it
keeps one script however many agent actors ask. The driver starts it and waits for
``ready()`` before anything of a project is written (``cluster.engine``), so that an
engine that cannot be placed or started fails the run at once. The actor restarts if it dies
(``max_restarts=-1``), and ``RemoteLLM`` waits for the restart and retries, within a
bound, before reporting ``LLMUnavailable``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import ray

from .config import LLMConfig, make_llm
from .protocol import LLMDeadline, LLMReply, LLMRequest, LLMUnavailable

NAMESPACE = "aisci"


@ray.remote(max_restarts=-1, max_task_retries=0)
class LLMServer:
    def __init__(self, config: dict):
        t0 = time.perf_counter()
        self.config = LLMConfig.model_validate(config)
        self.llm = make_llm(self.config)
        self.startup_s = time.perf_counter() - t0

    def ready(self) -> dict:
        """Answered once the backend is up: its start-up time and, for vLLM, its window."""
        return {"startup_s": self.startup_s, "max_model_len": getattr(self.llm, "max_model_len", None)}

    async def complete(self, request: dict) -> dict:
        req = LLMRequest.model_validate(request)
        acomplete = getattr(self.llm, "acomplete", None)
        if acomplete is not None:  # vLLM: many requests in flight, batched by the engine
            reply = await acomplete(req)
        else:
            reply = await asyncio.to_thread(self.llm.complete, req)
        return reply.model_dump()

    def stats(self) -> dict:
        return {"startup_s": self.startup_s, **getattr(self.llm, "stats", lambda: {})()}


# What the server is made of; the rest of the config (the window the prompts are cut
# to, the client's timeouts) is the callers' and may be filled in once it runs.
_SERVER_FIELDS = {"backend", "model", "base_url", "script", "script_by_step", "vllm"}


def server_name(config: LLMConfig) -> str:
    """One server per distinct config (two scripts, or two models, never share one)."""
    digest = hashlib.sha1(json.dumps(config.model_dump(include=_SERVER_FIELDS), sort_keys=True).encode()).hexdigest()[:10]
    return f"llm-{config.backend}-{config.model or 'default'}-{digest}".replace("/", "_")


def start_server(config: LLMConfig):
    """The cluster's LLM actor for ``config`` (created on first use, then shared). The
    vLLM engine asks Ray for ``vllm.num_gpus`` GPUs (1 if unset: the driver sets it from
    the cluster, ``actors.llm.config.resolve_engine``) and one CPU."""
    num_gpus = float(config.vllm.get("num_gpus", 1 if config.backend == "vllm" else 0))
    return LLMServer.options(
        name=server_name(config), namespace=NAMESPACE, get_if_exists=True, lifetime="detached",
        num_gpus=num_gpus, num_cpus=0 if config.backend != "vllm" else 1, max_concurrency=64,
    ).remote(config.model_dump())


class RemoteLLM:
    """The LLM protocol over a handle to the shared ``LLMServer`` actor."""

    def __init__(self, config: LLMConfig, restart_wait_s: float = 120.0):
        self.config, self.name, self.restart_wait_s = config, config.backend, restart_wait_s
        self._handle = start_server(config)

    def complete(self, request: LLMRequest) -> LLMReply:
        """Raises ``LLMDeadline`` when the request's deadline passes first (the call is
        cancelled: the engine stops generating for it), ``LLMUnavailable`` when the actor
        does not come back."""
        deadline = time.monotonic() + self.restart_wait_s
        while True:
            ref = self._handle.complete.remote(request.model_dump())
            wait = None if request.deadline is None else max(request.deadline - time.time(), 0.0)
            try:
                return LLMReply.model_validate(ray.get(ref, timeout=wait))
            except ray.exceptions.GetTimeoutError:
                ray.cancel(ref)
                raise LLMDeadline("no reply from the model before the project's wall-clock budget ended") from None
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
                # The engine actor died or is restarting: wait for Ray to restart it.
                if time.monotonic() > deadline:
                    raise LLMUnavailable(f"the LLM actor {server_name(self.config)} did not come back within "
                                         f"{self.restart_wait_s:.0f} s: {e}") from None
                time.sleep(1.0)
