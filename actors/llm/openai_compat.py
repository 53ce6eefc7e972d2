"""Any OpenAI-compatible chat endpoint: a ``vllm serve``, a hosted API.

Base URL, model and key come from config or the environment (``AISCI_LLM_BASE_URL``,
``AISCI_LLM_MODEL``; the key from the variable named by ``api_key_env``, never from a
file that could reach the bus). The ``openai`` client does the timeouts and the
retries with exponential backoff on 408/409/429/5xx; a refusal of a prompt over the
model's window becomes ``LLMContextOverflow`` (``actors.llm.overflow``); connection
failures and other final HTTP errors become ``LLMUnavailable`` with a message that says
what to check.

The client's timeout is per read, so a server that sends a byte every few seconds
would hold a call forever (and a project past its budget). Each call therefore has a
hard limit on its whole duration: the request's ``deadline`` (the project's budget:
``LLMDeadline``) or ``timeout_s`` times the attempts (``LLMUnavailable``); at that
point the connection is closed under the waiting thread and the call abandoned.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import threading
import time

try:  # the HTTP library the openai client is built on: httpx2 from openai 3 on, httpx before
    import httpx2 as httpx
except ImportError:  # pragma: no cover - older openai
    import httpx
import openai

from .overflow import context_overflow
from .protocol import LLMBadReply, LLMDeadline, LLMReply, LLMRequest, LLMUnavailable
from .wire import CappedTransport, ReplyTooLarge, read_completion


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
        self._api_key = os.environ.get(api_key_env) or "none"
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self._lock = threading.Lock()
        self._client = self._new_client()

    def _new_client(self) -> openai.OpenAI:
        # Every reply body is capped while it is read (actors/llm/wire.py).
        return openai.OpenAI(base_url=self.base_url, api_key=self._api_key, timeout=self.timeout_s,
                             max_retries=self.max_retries, http_client=httpx.Client(transport=CappedTransport()))

    def _create(self, kwargs: dict, deadline: float | None):
        """``chat.completions.create`` within a hard limit on its whole duration."""
        cap = self.timeout_s * (self.max_retries + 1) + 30  # every attempt, and backoffs between them
        limit = cap if deadline is None else min(cap, deadline - time.time())
        if limit <= 0:
            raise LLMDeadline("the project's wall-clock budget had ended before the call")
        client = self._client
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        future = pool.submit(client.chat.completions.with_raw_response.create, **kwargs)
        pool.shutdown(wait=False)
        try:
            return future.result(timeout=limit)
        except concurrent.futures.TimeoutError:
            with self._lock:  # close the stalled connection (the waiting thread ends), and start a new client
                if self._client is client:
                    self._client = self._new_client()
            client.close()
            if deadline is not None and limit < cap:
                raise LLMDeadline(f"no complete reply from {self.base_url} before the project's wall-clock budget "
                                  f"ended ({limit:.0f} s into the call)") from None
            raise LLMUnavailable(f"no complete reply from {self.base_url} within {cap:.0f} s (a stalled or far too "
                                 "slow server); check the server, or raise llm.timeout_s") from None

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
            raw = self._create(kwargs, request.deadline)
            body = json.loads(raw.http_response.content)
        except ReplyTooLarge as e:
            raise LLMBadReply(f"{self.base_url}: {e}; a server that sends that much is misbehaving") from None
        except ValueError as e:  # not JSON at all
            raise LLMBadReply(f"{self.base_url} sent a reply that is not JSON ({str(e)[:200]})") from None
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
        return read_completion(body, self.model, self.name, time.perf_counter() - t0)
