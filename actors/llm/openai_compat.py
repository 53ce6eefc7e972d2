"""Any OpenAI-compatible chat endpoint: a ``vllm serve``, a hosted API.

Base URL, model and key come from config or the environment (``AISCI_LLM_BASE_URL``,
``AISCI_LLM_MODEL``; the key from the variable named by ``api_key_env``, never from a
file that could reach the bus). The ``openai`` client does the timeouts and the
retries with exponential backoff on 408/409/429/5xx; a refusal of a prompt over the
model's window becomes ``LLMContextOverflow`` (``actors.llm.overflow``); connection
failures and other final HTTP errors become ``LLMUnavailable`` with a message that says
what to check.
"""

from __future__ import annotations

import os
import time

import openai

from .overflow import context_overflow
from .protocol import LLMReply, LLMRequest, LLMUnavailable, ToolCall


class OpenAICompatLLM:
    name = "openai"

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 timeout_s: float = 120.0, max_retries: int = 4):
        self.base_url = (base_url or os.environ.get("AISCI_LLM_BASE_URL") or "").rstrip("/")
        self.model = model or os.environ.get("AISCI_LLM_MODEL") or ""
        if not self.base_url or not self.model:
            raise LLMUnavailable(
                "the openai backend needs a base URL and a model: set llm.base_url and llm.model in the config, "
                "or AISCI_LLM_BASE_URL and AISCI_LLM_MODEL (e.g. http://localhost:8000/v1 for `vllm serve`)"
            )
        self._client = openai.OpenAI(base_url=self.base_url, api_key=os.environ.get(api_key_env) or "none",
                                     timeout=timeout_s, max_retries=max_retries)

    def complete(self, request: LLMRequest) -> LLMReply:
        kwargs: dict = {"model": self.model, "messages": request.messages, "max_tokens": request.max_tokens,
                        "temperature": request.temperature}
        if request.tools:
            kwargs["tools"] = request.tools
        if request.response_schema is not None:
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "decision", "schema": request.response_schema}}
        t0 = time.perf_counter()
        try:
            data = self._client.chat.completions.create(**kwargs)
        except openai.APIConnectionError as e:
            raise LLMUnavailable(f"could not reach {self.base_url} ({e}); is the server running, "
                                 "and is llm.base_url right?") from None
        except openai.APIStatusError as e:
            if e.status_code in (400, 413, 422):  # how servers refuse a prompt over the window
                overflow = context_overflow(f"{e} {getattr(e, 'code', None) or ''}", self.base_url)
                if overflow is not None:
                    raise overflow from None
            raise LLMUnavailable(f"{self.base_url} answered HTTP {e.status_code} after retries: "
                                 f"{str(e)[:300]}; check the model name and the key") from None
        choice = data.choices[0]
        message = choice.message
        usage = data.usage
        details = getattr(usage, "prompt_tokens_details", None)
        return LLMReply(
            text=message.content or "",
            tool_calls=[ToolCall(id=c.id or f"call_{i}", name=c.function.name, arguments=c.function.arguments or "")
                        for i, c in enumerate(message.tool_calls or [])],
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            cached_tokens=(getattr(details, "cached_tokens", 0) or 0) if details else 0,
            model=data.model or self.model, backend=self.name, latency_s=time.perf_counter() - t0,
            finish_reason=choice.finish_reason or "",
        )
