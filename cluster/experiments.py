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
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Literal

import ray
from pydantic import BaseModel, Field

from actors.llm.record import is_secret_name
from bus import Bus, BusConfig

from .sandbox import bwrap_command

_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_OWN_FILES = ("output.log", "result.json", "spec.json")  # written by the runner or already on the bus
_INGEST_MAX_BYTES = 4 * 1024 * 1024  # bigger outputs (checkpoints) stay plain files in the run folder


class RunSpec(BaseModel):
    name: str = Field(description="The run's id: its folder experiments/<name>/.")
    command: str = Field(description="Shell command, run in the run's folder.")
    gpus: float = Field(default=0, ge=0)
    cpus: float = Field(default=1, gt=0)
    memory_mb: int = Field(default=4096, gt=0, description="Memory Ray reserves for the run; for CPU runs also "
                           "the address-space limit of its processes (not for GPU runs: CUDA maps far more "
                           "virtual memory than it uses, and an address-space limit breaks it).")
    timeout_s: float = Field(default=3600, gt=0)
    output_cap_bytes: int = Field(default=1_000_000, gt=0, description="Beyond this, output is dropped (the tail is kept).")
    sandbox: Literal["auto", "bwrap", "none"] = Field(
        default="auto", description="bwrap: required; auto: bwrap where installed, else unsandboxed with a "
        "warning event (the embedded default must run on a bare machine); none: never.")
    network: bool = False
    hide: list[str] = Field(default_factory=list, description="Paths the run must not see (private answers).")
    seed: int = Field(default=0, description="Exported as AISCI_SEED (a sweep's seed axis); code may use it.")


class RunResult(BaseModel):
    name: str
    status: Literal["ok", "failed", "timeout", "oom", "lost"]
    exit_code: int | None
    duration_s: float
    metrics: dict[str, float] = Field(default_factory=dict)
    output_tail: str = ""
    node: str = ""


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
    """Run one experiment here and now (the body of the Ray task ``launch`` schedules)."""
    run = RunSpec.model_validate(spec)
    if not _NAME_RE.match(run.name):
        raise ValueError(f"experiment name {run.name!r}: use lower-case letters, digits, '.', '_' or '-'")
    bus = Bus(config=BusConfig.model_validate(bus_config))
    proj = bus.project(project)
    system = proj.as_role("system", f"run-{run.name}")
    run_dir = proj.dir / "experiments" / run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").unlink(missing_ok=True)  # a retried run must not report the old metrics
    if run.sandbox == "bwrap" or (run.sandbox == "auto" and shutil.which("bwrap")):
        argv = bwrap_command(run.command, bus.root, proj.dir, run_dir, run.hide, run.gpus > 0, run.network)
    else:
        if run.sandbox == "auto":
            system.record("warning", "bubblewrap is not installed: this run is NOT sandboxed "
                          "(apt-get install bubblewrap; or sandbox: bwrap to require it)")
        argv = ["bash", "-c", run.command]
    env = {k: v for k, v in os.environ.items() if not is_secret_name(k)}  # runs get no credentials
    env.update(OMP_NUM_THREADS=str(max(int(run.cpus), 1)), PYTHONUNBUFFERED="1", AISCI_SEED=str(run.seed),
               # `python3` in a run is the interpreter (and virtualenv) the cluster runs.
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}")
    system.record("experiment_start", f"{run.name}: {run.command[:200]}", path=f"experiments/{run.name}/spec.json",
                  metrics={"gpus": run.gpus, "cpus": run.cpus})
    log = f"experiments/{run.name}/output.log"
    system.write(log, b"", summary=f"output of {run.name} (streamed while it runs)")  # a retry starts afresh
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=run_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=_limits(run.memory_mb if run.gpus == 0 else None), start_new_session=True)
    timed_out, last = _stream_output(proc, lambda chunk: system.append(log, chunk), run.output_cap_bytes,
                                     t0 + run.timeout_s)
    duration = time.monotonic() - t0
    tail = last[-4000:].decode("utf-8", "replace")
    metrics = _read_metrics(run_dir / "metrics.json")
    if timed_out:
        status = "timeout"
    elif proc.returncode == 0:
        status = "ok"
    elif "MemoryError" in tail or "Cannot allocate memory" in tail or "std::bad_alloc" in tail:
        status = "oom"
    else:
        status = "failed"
    result = RunResult(name=run.name, status=status, exit_code=None if timed_out else proc.returncode,
                       duration_s=round(duration, 3), metrics=metrics, output_tail=tail,
                       node=ray.get_runtime_context().get_node_id() if ray.is_initialized() else "")
    # What the run wrote lands on the bus as versions, attributed to the run.
    for path in sorted(run_dir.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.name not in _OWN_FILES \
                and path.stat().st_size <= _INGEST_MAX_BYTES:
            system.write(f"experiments/{run.name}/{path.name}", path.read_bytes(), summary=f"written by run {run.name}")
    system.write(f"experiments/{run.name}/result.json", json.dumps(result.model_dump(), indent=1),
                 summary=f"{status} in {duration:.1f} s", metrics=metrics or None)
    system.record("experiment", f"{run.name}: {status} in {duration:.1f} s", path=f"experiments/{run.name}/result.json",
                  metrics={**metrics, "duration_s": duration, "gpus": run.gpus})
    return result.model_dump()


def _read_metrics(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# Retried when Ray loses the worker or node running it (never when the run's own code
# fails: that is a result). A retry starts the run afresh in the same folder.
_remote_run = ray.remote(max_retries=3)(run_experiment)


def launch(bus_config: BusConfig, project: str, spec: RunSpec) -> ray.ObjectRef:
    """Schedule a run as a Ray task with the resources its spec asks for."""
    return _remote_run.options(num_gpus=spec.gpus, num_cpus=spec.cpus,
                               memory=spec.memory_mb * 1024 * 1024).remote(bus_config.model_dump(mode="json"),
                                                                            project, spec.model_dump())
