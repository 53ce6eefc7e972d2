"""Experiments as Ray tasks: one run = one task, placed by Ray from the run's spec
(``num_gpus``, ``num_cpus``, memory), running the project's code in a subprocess in
its own folder ``experiments/<id>/``, sandboxed (``cluster.sandbox``), with a time
limit, a memory limit and an output cap. stdout/stderr are streamed to the bus
(``output.log`` there, appended every 2 s while the run goes);
metrics come from the ``metrics.json`` the code writes. A failed run (exception,
timeout, out of memory) is a normal result the debugging role reads.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import ray

from actors.llm.record import is_secret_name
from actors.runs import RunResult, RunSpec, record_result
from bus import Bus, BusConfig

from .sandbox import bwrap_command

_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1
_OWN_FILES = ("output.log", "result.json", "spec.json")  # written by the runner or already on the bus
_INGEST_MAX_BYTES = 4 * 1024 * 1024  # bigger outputs (checkpoints) stay plain files in the run folder


def _limits(memory_mb: int | None):
    def apply() -> None:  # in the child, before exec: the limit covers the whole sandbox
        if memory_mb is not None:
            limit = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        # Die with the runner: a run whose Ray worker was killed (node lost, job
        # stopped) must not keep writing into a folder its retry is about to reuse.
        # bwrap's --die-with-parent carries this on to everything inside the sandbox.
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    return apply


def _stream_output(proc: subprocess.Popen, append: Callable[[bytes], None], cap: int,
                   deadline: float, flush_s: float = 2.0) -> tuple[bool, bytes]:
    """Stream the run's output to the bus (``append``, every ``flush_s`` seconds) up to
    ``cap`` bytes, then keep only a rolling tail. Kills the process group at the
    deadline. Returns (timed out, the last 8 KB of output)."""
    dropped, sent, buffer, tail, last_flush = 0, 0, b"", b"", time.monotonic()
    os.set_blocking(proc.stdout.fileno(), False)

    def flush() -> None:
        nonlocal buffer, last_flush
        if buffer:
            append(buffer)
        buffer, last_flush = b"", time.monotonic()

    timed_out = False
    while True:
        chunk = proc.stdout.read(65536)
        if chunk:
            tail = (tail + chunk)[-8192:]
            room = max(cap - sent, 0)
            buffer += chunk[:room]
            sent += min(len(chunk), room)
            dropped += len(chunk) - min(len(chunk), room)
        elif proc.poll() is not None:
            break
        elif time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group: bwrap and everything in it
            proc.wait()
            timed_out = True
            break
        else:
            time.sleep(0.02)
        if time.monotonic() - last_flush > flush_s or len(buffer) > 65536:
            flush()
    flush()
    if dropped:
        append(f"\n[... {dropped} bytes of output dropped (output_cap_bytes); the last 4 KB:]\n".encode() + tail[-4096:])
    return timed_out, tail


def run_experiment(bus_config: dict, project: str, spec: dict) -> dict:
    """Run one experiment here and now (the body of the Ray task ``launch`` schedules);
    returns its ``RunResult`` as a dict."""
    run = RunSpec.model_validate(spec)
    bus = Bus(config=BusConfig.model_validate(bus_config))
    proj = bus.project(project)
    system = proj.as_role("system", f"run-{run.id}")
    policy = run.policy
    run_dir = proj.dir / "experiments" / run.id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").unlink(missing_ok=True)  # a retried run must not report the old metrics
    if policy.sandbox == "bwrap":
        argv = bwrap_command(run.command, bus.root, proj.dir, run_dir, list(run.hidden), run.gpus > 0, policy.network)
    else:
        argv = ["bash", "-c", run.command]
    env = {k: v for k, v in os.environ.items() if not is_secret_name(k)}  # runs get no credentials
    env.update(OMP_NUM_THREADS=str(max(int(run.cpus), 1)), PYTHONUNBUFFERED="1", AISCI_SEED=str(policy.seed),
               # `python3` in a run is the interpreter (and virtualenv) the cluster runs.
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}")
    system.record("experiment_start", f"{run.id}: {run.command[:200]}", path=f"experiments/{run.id}/spec.json",
                  run=run.id, metrics={"gpus": run.gpus, "cpus": run.cpus})
    log = f"experiments/{run.id}/output.log"
    system.write(log, b"", summary=f"output of {run.id} (streamed while it runs)")  # a retry starts afresh
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=run_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=_limits(run.memory_mb if run.gpus == 0 else None), start_new_session=True)
    timed_out, last = _stream_output(proc, lambda chunk: system.append(log, chunk), policy.output_cap_bytes,
                                     t0 + run.timeout_s)
    duration = time.monotonic() - t0
    tail = last[-4000:].decode("utf-8", "replace")
    metrics, problem = _read_metrics(run_dir / "metrics.json")
    reason = ""
    if timed_out:
        status, reason = "timeout", f"killed after its {run.timeout_s:.0f} s time limit"
    elif proc.returncode == 0 and problem:
        status, reason = "invalid", problem
    elif proc.returncode == 0:
        status = "ok"
    elif "MemoryError" in tail or "Cannot allocate memory" in tail or "std::bad_alloc" in tail:
        status, reason = "oom", f"out of memory (limit {run.memory_mb} MB)"
    else:
        status, reason = "failed", f"exit code {proc.returncode}; see output.log"
    result = RunResult(id=run.id, status=status, reason=reason, exit_code=None if timed_out else proc.returncode,
                       duration_s=round(duration, 3), metrics=metrics, output_tail=tail,
                       node=ray.get_runtime_context().get_node_id() if ray.is_initialized() else "")
    # What the run wrote lands on the bus as versions, attributed to the run.
    for path in sorted(run_dir.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.name not in _OWN_FILES \
                and path.stat().st_size <= _INGEST_MAX_BYTES:
            system.write(f"experiments/{run.id}/{path.name}", path.read_bytes(), summary=f"written by run {run.id}")
    record_result(system, result, gpus=run.gpus)
    return result.model_dump()


def _read_metrics(path: Path) -> tuple[dict[str, float], str]:
    """The finite numbers of a run's metrics.json, and what is wrong with it ("" if
    nothing): a non-finite number (NaN, inf) makes the run invalid, never a score."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}, ""
    except (ValueError, UnicodeDecodeError) as e:
        return {}, f"metrics.json is not valid JSON ({e}); write one object of numbers"
    if not isinstance(data, dict):
        return {}, "metrics.json must be one JSON object of numbers, e.g. {\"cv_score\": 0.91}"
    numbers = {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    bad = sorted(k for k, v in numbers.items() if not math.isfinite(v))
    if bad:
        return {k: v for k, v in numbers.items() if math.isfinite(v)}, \
            f"metrics.json has non-finite values for {', '.join(bad)} (NaN or inf): not a result"
    return numbers, ""


# Retried when Ray loses the worker or node running it (never when the run's own code
# fails: that is a result). A retry starts the run afresh in the same folder.
_remote_run = ray.remote(max_retries=3)(run_experiment)


def run_here(bus_config: BusConfig, project: str) -> Callable[[list[RunSpec]], list[RunResult]]:
    """The orchestrator's ``run_experiments`` without Ray: each run in this process, one
    after the other (in-process projects: tests, the crash-test worker)."""
    def run(specs: list[RunSpec]) -> list[RunResult]:
        config = bus_config.model_dump(mode="json")
        return [RunResult.model_validate(run_experiment(config, project, s.model_dump(mode="json"))) for s in specs]
    return run


def launch(bus_config: BusConfig, project: str, spec: RunSpec) -> ray.ObjectRef:
    """Schedule a run as a Ray task with the resources its spec asks for (its memory
    includes its private /tmp, which lives in memory)."""
    memory_mb = spec.memory_mb + spec.policy.tmp_mb
    return _remote_run.options(num_gpus=spec.gpus, num_cpus=spec.cpus, memory=memory_mb * 1024 * 1024).remote(
        bus_config.model_dump(mode="json"), project, spec.model_dump(mode="json"))
