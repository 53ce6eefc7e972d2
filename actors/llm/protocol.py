"""The one small protocol every LLM backend speaks.

Messages and tool schemas go in (OpenAI chat format: ``{"role": ..., "content": ...}``
and ``{"type": "function", "function": {...}}``); text, tool calls and token usage
come out. Backends: ``scripted`` (tests and replays), ``openai`` (any
OpenAI-compatible endpoint), ``vllm`` (an engine actor inside the Ray cluster).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field, field_validator

from .untrusted import clean


class ToolCall(BaseModel):
    """One call of a tool, as the model asked for it."""

    id: str = Field(description="Call id; echoed back in the tool's reply message.")
    name: str
    arguments: str = Field(description="The arguments as the model wrote them: a JSON string, maybe malformed.")

    @field_validator("id", "name", "arguments")
    @classmethod
    def _no_lone_surrogates(cls, value: str) -> str:
        return clean(value)


class LLMReply(BaseModel):
    """What a backend returns for one request."""

    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = Field(default=0, description="Prompt tokens served from a prefix cache, when known.")
    model: str = ""
    backend: str = ""
    latency_s: float = 0.0
    finish_reason: str = Field(default="", description="Why the reply ended, as the server says: 'stop', "
                               "'tool_calls', 'length' (cut at the request's max_tokens); '' when it does not say.")

    @field_validator("text", "finish_reason", "model")
    @classmethod
    def _no_lone_surrogates(cls, value: str) -> str:
        return clean(value)  # see actors/llm/untrusted.py

    @property
    def cut(self) -> bool:
        """The server cut the reply at ``max_tokens``: its last call or object is incomplete."""
        return self.finish_reason == "length"


class LLMRequest(BaseModel):
    """Everything that determines a reply, kept on the bus for audit and replay."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = Field(default_factory=list)
    response_schema: dict[str, Any] | None = Field(
        default=None, description="JSON schema the reply text must follow (structured output for decisions)."
    )
    max_tokens: int = Field(default=1024, gt=0, description="Cap on the reply's length, in tokens (the agent "
                            "sends its role's max_reply_tokens); a reply cut there has finish_reason 'length'.")
    temperature: float = 0.0
    tag: str = Field(default="", description="Who asks (the subtask id): lets a scripted model keep one script per subtask.")
    deadline: float | None = Field(default=None, description="Epoch seconds by which the reply must be complete "
                                   "(the project's wall-clock budget): a backend abandons the call then and raises "
                                   "LLMDeadline. None: only the backend's own timeouts apply.")


@runtime_checkable
class LLM(Protocol):
    """A language model: ``complete(request) -> LLMReply``. Backends must be safe to
    call from several threads, raise ``LLMUnavailable`` for transport failures and
    ``LLMContextOverflow`` for a prompt over the model's window."""

    name: str

    def complete(self, request: LLMRequest) -> LLMReply: ...


class LLMError(Exception):
    """Base class of LLM backend errors (system faults: raised to the operator)."""


class LLMUnavailable(LLMError):
    """The backend could not be reached or kept failing after its retries."""


class LLMBadReply(LLMUnavailable):
    """The server answered, but with nothing usable (over the size cap, not JSON): one
    reply's fault, not the backend's. An agent tells its model and asks again (a subtask
    fails after a few in a row); elsewhere it is as unavailable."""


class LLMDeadline(LLMError):
    """No complete reply before the request's ``deadline`` (the project's budget ended
    during the call): the caller stops as it does when a budget is spent."""


class LLMContextOverflow(LLMError):
    """The server refused the request because the prompt (with the reply's cap) is over
    the model's context window. Not a fault of the backend: the caller cuts its prompt
    and asks again (``actors.llm.overflow`` recognises the servers' messages).

    ``limit_tokens``: the window; ``prompt_tokens``: the prompt as the server counted it;
    either None when the message does not say."""

    def __init__(self, message: str, limit_tokens: int | None = None, prompt_tokens: int | None = None):
        super().__init__(message)
        self.limit_tokens, self.prompt_tokens = limit_tokens, prompt_tokens

    def __reduce__(self):  # keeps the numbers across Ray (the LLM server actor raises it)
        return type(self), (self.args[0], self.limit_tokens, self.prompt_tokens)


class ContextWindow(BaseModel):
    """What a model can take: prompt and reply together, in tokens."""

    tokens: int = Field(gt=0, description="The context window (vLLM's max_model_len), prompt + reply, in tokens.")
    chars_per_token: float = Field(default=3.0, gt=0, description="Characters a token, to turn a budget in tokens "
                                   "into one in characters. English prose is ~4, code and JSON-escaped code ~3: "
                                   "the lower estimate keeps a prompt under the window.")

    def prompt_chars(self, reply_tokens: int) -> int:
        """Characters of prompt that fit beside a reply of ``reply_tokens``."""
        return int((self.tokens - reply_tokens) * self.chars_per_token)


class ScriptExhausted(LLMError):
    """A scripted model was asked for more replies than it was given."""


class RecordingEnded(LLMDeadline):
    """A replay asked past the end of what was recorded: the recorded project had
    stopped this subtask (or the orchestrator) before the call, most often because its
    wall-clock budget ended, which a replay at full speed does not reach. A deadline,
    so the caller stops as the recorded one did (``aisci replay``)."""
