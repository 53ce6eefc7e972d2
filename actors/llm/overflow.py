"""Telling a context-length refusal from other errors, by the servers' own messages.

A server answers a prompt over the model's window with an HTTP 400 (or 413/422) whose
message is all there is to go by. Taken as "unavailable", it ended a project with
"check the model name and the key" (peer case 12); it is ``LLMContextOverflow`` instead,
which the agent loop and the LLM policy handle by cutting their prompt. Recognised:

- vLLM's OpenAI server: "This model's maximum context length is 16384 tokens. However,
  you requested 16092 tokens (15068 in the messages, 1024 in the completion)...", "...
  However, your request has 17000 input tokens...", "... However, you requested 1024
  output tokens and your prompt contains at least 15361 input tokens...", "'max_tokens' or
  'max_completion_tokens' is too large: ... maximum context length is 2048 tokens and
  your request has 1500 input tokens";
- vLLM's engine: "The decoder prompt (length 5000) is longer than the maximum model
  length of 4096";
- OpenAI (code ``context_length_exceeded``): "This model's maximum context length is
  128000 tokens. However, your messages resulted in 130532 tokens", "Input tokens exceed
  the configured limit of 272000 tokens";
- llama.cpp: "the request exceeds the available context size";
- TGI: "`inputs` tokens + `max_new_tokens` must be <= 4096".
"""

from __future__ import annotations

import re

from .protocol import LLMContextOverflow

__all__ = ["context_overflow"]

_OVERFLOW = re.compile(r"maximum context length|context_length_exceeded|maximum model length|exceeds? the available "
                       r"context|exceed the configured limit|max_new_tokens` must be <=", re.I)
_LIMIT = re.compile(r"maximum (?:context|model) length (?:is |of )?(\d+)|configured limit of (\d+)|must be <= (\d+)", re.I)
_PROMPT = re.compile(r"(\d+) in the messages|has (\d+) input tokens|resulted in (\d+) tokens|prompt \(length (\d+)\)|"
                     r"Given: (\d+) `inputs` tokens|contains at least (\d+) input tokens", re.I)


def _number(pattern: re.Pattern, text: str) -> int | None:
    found = pattern.search(text)
    return int(next(g for g in found.groups() if g)) if found else None


def context_overflow(message: str, server: str = "the server") -> LLMContextOverflow | None:
    """The ``LLMContextOverflow`` that ``message`` (an error's text, with its code if
    any) reports, or None if it reports something else."""
    if not _OVERFLOW.search(message):
        return None
    limit, prompt = _number(_LIMIT, message), _number(_PROMPT, message)
    sizes = f" ({prompt or '?'} prompt tokens, window {limit or '?'})" if limit or prompt else ""
    return LLMContextOverflow(
        f"the prompt is over the model's context window{sizes}: {server} said {message.strip()[:300]!r}; set "
        "llm.context_tokens to the model's window so that prompts are cut to fit before they are sent",
        limit_tokens=limit, prompt_tokens=prompt)
