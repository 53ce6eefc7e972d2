"""Choosing an LLM backend by name, from config."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .protocol import LLM, ContextWindow
from .vllm_engine import (
    DEFAULT_MAX_MODEL_LEN,  # a constant: nothing of vLLM is imported here
)


class LLMConfig(BaseModel):
    """Which model drives the agents. Saved with every project's results."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["baseline", "scripted", "openai", "vllm"] = Field(
        default="baseline", description="baseline: the built-in template policy (no model); scripted: replays "
        "`script` (tests); openai: any OpenAI-compatible endpoint; vllm: an engine actor inside the Ray cluster, "
        "shared by every agent.")
    model: str = Field(default="", description="Model name (openai) or path/name of the weights (vllm).")
    base_url: str = Field(default="", description="openai: the endpoint, e.g. http://localhost:8000/v1.")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="openai: the environment variable holding the key.")
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    script: list[dict[str, Any]] | dict[str, list[dict[str, Any]]] = Field(
        default_factory=list, description="scripted: the replies, or one list per subtask id.")
    script_by_step: bool = Field(default=False, description="scripted: pick each reply by the request's step "
                                 "(shareable by many projects; a retried subtask replays) instead of in order.")
    script_is_recording: bool = Field(default=False, description="scripted: the script is a recorded project's "
                                      "calls (`aisci replay`): a request past a tag's last reply raises "
                                      "RecordingEnded (a deadline: the caller stops as the recorded one was "
                                      "stopped there) instead of ScriptExhausted (a fault).")
    vllm: dict[str, Any] = Field(default_factory=dict, description="vllm: engine arguments (max_model_len, "
                                 "gpu_memory_utilization, any of vLLM's) and `num_gpus` for the engine actor (0: the "
                                 "CPU engine); see `EngineSettings` (the --llm-* flags and a sweep's `llm:`).")
    context_tokens: int | None = Field(
        default=None, gt=0, description="The model's context window (prompt + reply), in tokens: every prompt is "
        "cut to fit under it, and replies are capped at half of it. Default: vllm's max_model_len for the vllm "
        "backend; unknown otherwise (then only the roles' budgets apply, and a server's refusal of a prompt over "
        "its window is handled when it comes).")
    tool_calling: Literal["auto", "native", "text"] = Field(
        default="auto", description="How agents call tools: native (the API's tool calls), text (JSON objects in "
        "the reply, for servers without tool calling: actors.text_protocol), or auto: for openai, what the server "
        "accepts, probed at start (actors.llm.capabilities); native for the other backends.")
    chars_per_token: float = Field(default=3.0, gt=0, description="Characters a token, to turn the window into "
                                   "a budget in characters (code and JSON are ~3, English prose ~4).")

    def window(self) -> ContextWindow | None:
        """The model's context window, if known (see ``context_tokens``)."""
        tokens = self.context_tokens
        if tokens is None and self.backend == "vllm":
            tokens = int(self.vllm.get("max_model_len", DEFAULT_MAX_MODEL_LEN))
        return ContextWindow(tokens=tokens, chars_per_token=self.chars_per_token) if tokens else None


class EngineSettings(BaseModel):
    """The vLLM engine's settings, from ``--llm-gpus``, ``--llm-max-model-len``,
    ``--llm-memory-fraction``, a ``--llm-config FILE`` (YAML) or a sweep file's ``llm:``.
    The short names (``gpus``, ``memory_fraction``) and vLLM's own (``num_gpus``,
    ``gpu_memory_utilization``) both work; any other key is passed to vLLM's engine
    arguments as it is (``dtype``, ``enforce_eager``, ``tensor_parallel_size``...)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, title="vLLM engine")

    num_gpus: float | None = Field(default=None, ge=0, alias="gpus", description="GPUs Ray gives the engine actor; "
                                   "0 runs the CPU engine. Default: 1 when the cluster has a GPU, else 0.")
    max_model_len: int | None = Field(default=None, gt=0, description="The context window (prompt + reply), in "
                                      "tokens. Default: the model's own.")
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1, alias="memory_fraction",
                                                 description="Share of the GPU's memory (on the CPU: of the host's) "
                                                 "the engine takes. Default: vLLM's on a GPU, 0.3 on the CPU.")

    def engine_args(self) -> dict[str, Any]:
        """The settings given, by vLLM's names (what ``LLMConfig.vllm`` holds)."""
        return self.model_dump(exclude_none=True)


CPU_MEMORY_FRACTION = 0.3  # vLLM's default (0.9) of host memory failed on a 24 GiB machine (docs/agents.md)


def with_engine(config: LLMConfig, *layers: dict[str, Any]) -> LLMConfig:
    """``config`` with the engine settings of ``layers`` (later ones win: a file, then
    the flags). Raises ``ModelSpecError`` for settings without a vllm model and
    pydantic's ``ValidationError`` for a bad value."""
    given = {k: v for layer in layers for k, v in layer.items() if v is not None}
    if not given:
        return config
    if config.backend != "vllm":
        raise ModelSpecError(f"engine settings ({', '.join(sorted(given))}) apply to --model vllm:PATH only")
    args = dict(config.vllm)
    for layer in layers:  # each layer by vLLM's names first, so that `gpus` in a file and --llm-gpus meet
        args.update(EngineSettings.model_validate({k: v for k, v in layer.items() if v is not None}).engine_args())
    return config.model_copy(update={"vllm": args})


def resolve_engine(config: LLMConfig, cluster_gpus: float) -> LLMConfig:
    """The engine's placement made explicit for a cluster with ``cluster_gpus`` GPUs:
    ``num_gpus`` 1 where there is a GPU, else 0 (the CPU engine, which then takes a
    smaller share of host memory unless told). Not vllm: unchanged."""
    if config.backend != "vllm":
        return config
    args = dict(config.vllm)
    args.setdefault("num_gpus", 1 if cluster_gpus >= 1 else 0)
    if not args["num_gpus"]:
        args.setdefault("gpu_memory_utilization", CPU_MEMORY_FRACTION)
    return config.model_copy(update={"vllm": args})


def make_llm(config: LLMConfig) -> LLM:
    """Build a backend in this process (the vLLM backend lives in its own actor:
    see ``actors.llm.server``)."""
    if config.backend == "baseline":
        from ..baseline import BaselineLLM

        return BaselineLLM()
    if config.backend == "scripted":
        from .scripted import ScriptedLLM

        return ScriptedLLM(config.script, by_step=config.script_by_step, recording=config.script_is_recording)
    if config.backend == "openai":
        from .openai_compat import OpenAICompatLLM

        return OpenAICompatLLM(config.base_url or None, config.model or None, config.api_key_env,
                               config.timeout_s, config.max_retries)
    if config.backend == "vllm":
        from .vllm_engine import VLLMEngine

        return VLLMEngine(config.model, **{k: v for k, v in config.vllm.items() if k != "num_gpus"})
    raise ValueError(f"unknown LLM backend {config.backend!r}")


class ModelSpecError(ValueError):
    """A --model (or a sweep's model) that names no backend we have."""


def parse_model(spec: str, base_url: str | None = None, api_key_env: str | None = None) -> LLMConfig:
    """``baseline``, ``openai:<model>`` or ``vllm:<path>`` (the CLI's and sweeps' --model).

    The endpoint is resolved here, on the driver (``base_url``, else
    ``$AISCI_LLM_BASE_URL``), and travels in the config: actors on other nodes do not
    share the driver's environment. Raises ``ModelSpecError``."""
    backend, _, model = spec.partition(":")
    if backend not in ("baseline", "openai", "vllm"):
        raise ModelSpecError(f"--model {spec!r}: use baseline, openai:<model> or vllm:<model path>")
    if backend != "baseline" and not model.strip():
        raise ModelSpecError(f"--model {spec!r}: name the model after the colon ({backend}:<model"
                             + (" path" if backend == "vllm" else "") + ">)")
    if backend == "baseline" and model:
        raise ModelSpecError(f"--model {spec!r}: the baseline takes no model name (use baseline)")
    if backend == "openai":
        base_url = base_url or os.environ.get("AISCI_LLM_BASE_URL") or ""
        if not base_url:
            raise ModelSpecError(f"--model {spec} needs the endpoint: --base-url http://HOST:PORT/v1, or "
                                 "AISCI_LLM_BASE_URL in the environment (what a sweep reads)")
        return LLMConfig(backend=backend, model=model, base_url=base_url,
                         api_key_env=api_key_env or "OPENAI_API_KEY")
    return LLMConfig(backend=backend, model=model)


def actor_env(config: LLMConfig) -> dict[str, str]:
    """Environment variables the actors that call the model need from the driver (the
    API key, by the name the config gives): passed as Ray's ``runtime_env``, never
    written to the bus or the job file."""
    if config.backend != "openai":
        return {}
    value = os.environ.get(config.api_key_env)
    return {config.api_key_env: value} if value else {}
