"""What an OpenAI-compatible server can do, asked of the server itself before a
project starts: the models it serves, the context window, whether it takes tools.

- ``GET {base_url}/models``: the model must be listed (a typo would otherwise fail at
  the first agent step, after the project was created); vLLM reports ``max_model_len``
  there, which becomes the window unless ``LLMConfig.context_tokens`` is set.
- A probe chat call carrying one tool: a ``vllm serve`` started without
  ``--enable-auto-tool-choice`` answers HTTP 400 to any request with ``tools``, so
  every agent step failed. Then the agents write their calls as JSON in the text
  (``actors.text_protocol``), unless ``tool_calling`` forces native calls.

Every failure is ``ServerCheckFailed`` (an ``LLMUnavailable``), one line saying what
to change: the server unreachable, the key refused, the model not served, tools
refused while forced, or no complete answer within ``CHECK_LIMIT_S`` (a server that
sent a byte every half second held ``aisci run`` at start for over 10 minutes: the
client's timeout is per read, never reached).
"""

from __future__ import annotations

import concurrent.futures
import os

import openai
from pydantic import BaseModel, Field

from .config import LLMConfig
from .protocol import LLMUnavailable

__all__ = ["CHECK_LIMIT_S", "Capabilities", "ServerCheckFailed", "check_server"]

CHECK_LIMIT_S = 120.0  # the whole check; a server warming up answers its first small requests well within it

PROBE_TOOL = {"type": "function", "function": {
    "name": "ping", "description": "Answer the probe.", "parameters": {"type": "object", "properties": {}}}}
_PROBE = [{"role": "user", "content": "Call the tool ping."}]


class ServerCheckFailed(LLMUnavailable):
    """The server cannot serve this project as configured; the message says what to change."""


class Capabilities(BaseModel):
    """What the server said about itself."""

    models: list[str] = Field(description="The model ids it serves.")
    context_tokens: int | None = Field(default=None, description="max_model_len, when it reports one (vLLM).")
    tools: bool = Field(description="It accepted a request carrying tools.")
    tools_error: str = Field(default="", description="What it answered to tools, when it refused them.")


def check_server(config: LLMConfig, timeout_s: float = 30.0,
                 limit_s: float = CHECK_LIMIT_S) -> tuple[LLMConfig, Capabilities]:
    """Ask the server of ``config`` (backend openai) what it can do; returns the config
    with ``tool_calling`` resolved ("native" or "text") and ``context_tokens`` filled
    from the server where unset, and what the server said. ``timeout_s``: per read;
    ``limit_s``: the whole check.

    Raises:
        ServerCheckFailed: unreachable, the key refused, the model not listed, tools
        refused with ``tool_calling="native"``, or no complete answer within ``limit_s``.
    """
    url = config.base_url.rstrip("/")
    client = openai.OpenAI(base_url=url, api_key=os.environ.get(config.api_key_env) or "none",
                           timeout=min(timeout_s, config.timeout_s), max_retries=1)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(_check, client, url, config)
    pool.shutdown(wait=False)
    try:
        return future.result(timeout=limit_s)
    except concurrent.futures.TimeoutError:
        raise ServerCheckFailed(f"{url} gave no complete answer to the start-up check within {limit_s:.0f} s (a "
                                "stalled or far too slow server): check the server, then start again") from None
    finally:  # a stalled read ends when its connection closes (or the thread would hold the exit)
        if not future.done():
            client.close()


def _check(client: openai.OpenAI, url: str, config: LLMConfig) -> tuple[LLMConfig, Capabilities]:
    listed = _call(lambda: client.models.list().data, url, config)
    models = [m.id for m in listed]
    if config.model not in models:
        raise ServerCheckFailed(f"{url} does not serve the model {config.model!r}; it serves "
                                f"{', '.join(models) or 'nothing'}: use --model openai:{models[0] if models else 'NAME'}")
    extra = next(m for m in listed if m.id == config.model).model_extra or {}
    window = extra.get("max_model_len")
    tools, tools_error = True, ""
    try:
        client.chat.completions.create(model=config.model, messages=_PROBE, tools=[PROBE_TOOL], max_tokens=16)
    except openai.BadRequestError as e:  # vllm serve without --enable-auto-tool-choice
        tools, tools_error = False, _message(e)
        _call(lambda: client.chat.completions.create(model=config.model, messages=_PROBE, max_tokens=16), url, config)
    except openai.APIError:
        _call(lambda: client.chat.completions.create(model=config.model, messages=_PROBE, tools=[PROBE_TOOL],
                                                     max_tokens=16), url, config)
    if not tools and config.tool_calling == "native":
        raise ServerCheckFailed(f"{url} refuses requests with tools ({tools_error}): start the server with tool "
                                "calling (vllm serve --enable-auto-tool-choice --tool-call-parser NAME), or use "
                                "--tool-calling text")
    mode = config.tool_calling if config.tool_calling != "auto" else "native" if tools else "text"
    caps = Capabilities(models=models, context_tokens=int(window) if window else None, tools=tools,
                        tools_error=tools_error)
    return config.model_copy(update={"tool_calling": mode,
                                     "context_tokens": config.context_tokens or caps.context_tokens}), caps


def _message(e: openai.APIStatusError) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    text = body.get("message") or (body.get("error") or {}).get("message") if body else None
    return f"HTTP {e.status_code}: {' '.join(str(text or e).split())[:200]}"


def _call(fn, url: str, config: LLMConfig):
    """``fn()``, its failures told as what to change."""
    try:
        return fn()
    except openai.APIConnectionError as e:
        raise ServerCheckFailed(f"cannot reach {url} ({' '.join(str(e).split())[:120]}): is the server running, "
                                "and is --base-url right (e.g. http://localhost:8000/v1)?") from None
    except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
        has = "is set" if os.environ.get(config.api_key_env) else "is not set"
        raise ServerCheckFailed(f"{url} refused the key ({_message(e)}); ${config.api_key_env} {has}: put the "
                                "server's key there, or name the variable that holds it with --api-key-env") from None
    except openai.APIStatusError as e:
        raise ServerCheckFailed(f"{url} answered {_message(e)} for model {config.model!r}: check --base-url "
                                "and --model") from None
