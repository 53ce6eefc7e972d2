"""Experiments as Ray tasks: one run = one task, placed by Ray from the run's spec
(``num_gpus``, ``num_cpus``, memory), running the project's code sandboxed
(``cluster.sandbox``) and confined (``cluster.confine``: its limits, its own host uid
when the runner is root, no process left behind), writing only into its scratch
folder (``cluster.scratch``), with a time limit, a disk quota, a memory limit and an
output cap. stdout/stderr are streamed to the bus (``output.log`` there, appended
every 2 s while the run goes); metrics come from the ``metrics.json`` the code
writes. A failed run (exception, timeout, out of memory, over its quota) is a normal
result the debugging role reads; a run whose sandbox cannot start, or whose mounts
would show a hidden path, is ``refused`` with what to do.

Everything about the sandbox comes from the spec (the operator's ``policy`` and the
``hidden`` paths), never from anything a run or an agent wrote. Whatever way the
runner leaves (a result, an exception of its own, its Ray worker killed), every
process of the run dies: try/finally here, the supervisor's parent-death signal and
the sandbox's pid namespace otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Callable

import ray

from actors.runs import RunResult, RunSpec, ScratchFile, record_result
from bus import Bus, BusConfig, BusRefusal

from . import confine, sandbox, scratch

_OWN_FILES = ("output.log", "result.json", "spec.json")  # the framework's files of a run, never the run's copies
_INGEST_MAX_BYTES = 4 * 1024 * 1024  # bigger outputs (checkpoints) stay in the scratch folder
_INGEST_MAX_FILES = 100
_INGEST_MAX_TOTAL_BYTES = 32 * 1024 * 1024
_QUOTA_EVERY_S = 0.25  # the disk watchdog's period (at least: 4x the last walk's time)
_FILE_TOO_BIG = (128 + signal.SIGXFSZ, -signal.SIGXFSZ)  # a shell's and Popen's ways of saying SIGXFSZ


class _Refused(Exception):
    """The run cannot start as the operator asked (no sandbox here, a hidden mount)."""


@dataclass
class _Launch:
    spawn: Callable[[], tuple[subprocess.Popen, int | None]]  # the process, and the sandbox's ready pipe
    work: str  # the run's writable folder
    roots: list[str]  # what counts against its disk quota


def _rlimits(run: RunSpec, uid: int | None) -> dict[str, int]:
    policy = run.policy
    # RLIMIT_NPROC counts every process of the real uid: exact under a run uid of its
    # own; else the user's current count plus the run's allowance (not enforced on root).
    procs = policy.max_procs if uid is not None else confine.tasks_of_uid(os.getuid()) + policy.max_procs
    limits = {"CORE": 0, "FSIZE": policy.disk_mb << 20, "NPROC": procs}
    if run.gpus == 0:  # CUDA maps far more virtual memory than it uses: no address-space cap on GPU runs
        limits["AS"] = run.memory_mb << 20
    return limits


def _prepare(run: RunSpec, bus_root: str, project_dir: str, scratch_dir: str, uid: int | None) -> _Launch:
    """Check what the run may see, make its scratch folder; raises ``_Refused``."""
    policy = run.policy
    env = sandbox.run_env(policy, run.id, run.cpus)
    if policy.sandbox == "bwrap":
        probe = sandbox.probe()
        if not probe.ok:
            raise _Refused(f"the sandbox cannot start on this node: {probe.reason}. Install or fix bubblewrap "
                           f"here, or the operator runs unsandboxed (--allow-unsandboxed) on a machine they trust")
        work = scratch.make(scratch_dir, run.id, None, uid)
        try:
            binds = sandbox.binds_for(project_dir, work, run.id, policy, run.gpus)
            sandbox.refuse_hidden(binds, run.hidden, policy.ro_mounts, bus_root)
        except sandbox.MountRefused as e:
            raise _Refused(str(e)) from None
        cwd = os.path.join(project_dir, "experiments", run.id)
        return _Launch(lambda: sandbox.start(binds, run.command, env, cwd, policy.network, policy.tmp_mb,
                                             _rlimits(run, uid), uid), work, [work])
    # Unsandboxed (the operator trusts the code): a scratch tree whose other entries
    # link to the project's folders, so that relative paths work the same way.
    work = scratch.make(scratch_dir, run.id, project_dir, None)
    tmp = os.path.join(scratch_dir, "tmp")
    env.update(HOME=tmp, TMPDIR=tmp)
    plan = {"argv": [shutil.which("bash") or "/bin/bash", "-c", run.command], "env": env, "cwd": work,
            "rlimits": _rlimits(run, None), "uid": None, "reap": True}
    return _Launch(lambda: (confine.spawn(plan), None), work, [work, tmp])


class _Quota:
    """The disk watchdog, called from the streaming loop: a reason to kill the run, or None."""

    def __init__(self, run: RunSpec, roots: list[str]):
        self.policy, self.roots, self.due = run.policy, roots, 0.0

    def __call__(self) -> str | None:
        now = time.monotonic()
        if now < self.due:
            return None
        used = scratch.usage(self.roots, self.policy.disk_mb << 20, self.policy.max_files)
        self.due = time.monotonic() + max(_QUOTA_EVERY_S, 4 * (time.monotonic() - now))
        if used.bytes > self.policy.disk_mb << 20:
            return f"wrote more than its disk quota ({self.policy.disk_mb} MB) into its folder: killed"
        if used.entries > self.policy.max_files:
            return f"made more than {self.policy.max_files} files and folders in its folder: killed"
        if used.too_deep:
            return f"made folders more than {scratch.MAX_DEPTH} deep: killed"
        return None


def _stream_output(proc: subprocess.Popen, append: Callable[[bytes], None], cap: int, deadline: float,
                   check: Callable[[], str | None], flush_s: float = 2.0) -> tuple[str | None, bytes]:
    """Stream the run's output to the bus (``append``, every ``flush_s`` seconds) up to
    ``cap`` bytes, then keep only a rolling tail, until the process ends, the deadline
    passes ("timeout") or ``check`` gives a reason to stop. Returns (why it was
    stopped, or None if it ended; the last 8 KB of output). Kills nothing itself."""
    dropped, sent, buffer, tail, last_flush = 0, 0, b"", b"", time.monotonic()
    os.set_blocking(proc.stdout.fileno(), False)

    def flush() -> None:
        nonlocal buffer, last_flush
        if buffer:
            append(buffer)
        buffer, last_flush = b"", time.monotonic()

    stop = None
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
            stop = "timeout"
            break
        else:
            time.sleep(0.02)
        stop = check()
        if stop:
            break
        if time.monotonic() - last_flush > flush_s or len(buffer) > 65536:
            flush()
    flush()
    if dropped:
        note = f"\n[... {dropped} bytes of output dropped (output_cap_bytes); the last 4 KB:]\n"
        append(note.encode() + tail[-4096:])
    return stop, tail


def _verdict(run: RunSpec, stop: str | None, code: int, tail: str, problem: str, limit_s: float) -> tuple[str, str]:
    if stop == "timeout":
        cut = "" if limit_s >= run.timeout_s else " (what was left of the project's budget when it started)"
        return "timeout", f"killed after its {limit_s:.0f} s time limit{cut}"
    if stop:
        return "failed", stop
    if code == 0:
        return ("invalid", problem) if problem else ("ok", "")
    if code in _FILE_TOO_BIG or "File too large" in tail:
        return "failed", f"a file reached the run's disk quota ({run.policy.disk_mb} MB); exit code {code}"
    if "MemoryError" in tail or "Cannot allocate memory" in tail or "std::bad_alloc" in tail:
        return "oom", f"out of memory (limit {run.memory_mb} MB)"
    return "failed", f"exit code {code}; see output.log"


def run_experiment(bus_config: dict, project: str, spec: dict) -> dict:
    """Run one experiment here and now (the body of the Ray task ``launch`` schedules);
    returns its ``RunResult`` as a dict. A run's own failure is a result; the runner's
    faults (the bus refusing a write of its own) are raised, after the run is killed."""
    run = RunSpec.model_validate(spec)
    bus = Bus(config=BusConfig.model_validate(bus_config))
    proj = bus.project(project)
    system = proj.as_role("system", f"run-{run.id}")
    (proj.dir / "experiments" / run.id).mkdir(parents=True, exist_ok=True)
    scratch_dir = str(bus.root / "scratch" / project / run.id)
    slot = confine.UidSlot() if run.policy.sandbox == "bwrap" and os.geteuid() == 0 else None
    with slot or contextlib.nullcontext():
        uid = slot.uid if slot else None
        try:
            launch = _prepare(run, str(bus.root), str(proj.dir), scratch_dir, uid)
        except _Refused as e:
            result = RunResult(id=run.id, status="refused", reason=str(e))
            record_result(system, result, gpus=run.gpus)
            return result.model_dump()
        limit_s = run.time_limit_s(time.time())
        if limit_s < 1:  # it waited for resources until the budget was spent
            result = RunResult(id=run.id, status="refused", reason="the project's wall-clock budget was spent while "
                               "the run waited for resources")
            record_result(system, result, gpus=run.gpus)
            return result.model_dump()
        system.record("experiment_start", f"{run.id}: {run.command[:200]}", path=f"experiments/{run.id}/spec.json",
                      run=run.id, metrics={"gpus": run.gpus, "cpus": run.cpus})
        log = f"experiments/{run.id}/output.log"
        system.write(log, b"", summary=f"output of {run.id} (streamed while it runs)")  # a retry starts afresh
        t0 = time.monotonic()
        proc, ready = launch.spawn()
        try:
            stop, last = _stream_output(proc, lambda chunk: system.append(log, chunk), run.policy.output_cap_bytes,
                                        t0 + limit_s, _Quota(run, launch.roots))
        finally:  # every way out: nothing of the run survives the runner
            confine.stop(proc, uid)
            up = sandbox.started(ready) if ready is not None else True
        duration = time.monotonic() - t0
        tail = last[-4000:].decode("utf-8", "replace")
        if not up:
            said = ([line for line in tail.splitlines() if line.strip()] or ["no output"])[-1][:300]
            # Turning the sandbox off is advice for a node whose sandbox is broken, never
            # for one run's bad value (a model must not talk its operator out of it).
            advice = ("the sandbox works on this node, so it is this run's command or environment that it could "
                      "not start" if sandbox.probe().ok else "Fix bubblewrap on this node, or the operator runs "
                      "unsandboxed (--allow-unsandboxed) on a machine they trust")
            result = RunResult(id=run.id, status="refused", duration_s=round(duration, 3), output_tail=tail,
                               reason=f"the sandbox could not start: {said}. {advice}")
            record_result(system, result, gpus=run.gpus)
            return result.model_dump()
        metrics, problem = scratch.read_metrics(launch.work)
        status, reason = _verdict(run, stop, proc.returncode, tail, problem, limit_s)
        # What the run wrote lands on the bus as versions, attributed to the run.
        harvest = scratch.harvest(launch.work, _OWN_FILES, _INGEST_MAX_BYTES, _INGEST_MAX_FILES,
                                  _INGEST_MAX_TOTAL_BYTES)
        for name, data in harvest.files.items():
            try:
                system.write(f"experiments/{run.id}/{name}", data, summary=f"written by run {run.id}")
            except BusRefusal as e:  # a name the bus does not take
                harvest.skipped[name] = str(e)[:200]
        result = RunResult(id=run.id, status=status, reason=reason, exit_code=None if stop else proc.returncode,
                           duration_s=round(duration, 3), metrics=metrics, output_tail=tail,
                           node=ray.get_runtime_context().get_node_id() if ray.is_initialized() else "",
                           scratch_dir=scratch_dir, skipped=harvest.skipped,
                           left_in_scratch=[ScratchFile(name=n, size_bytes=s) for n, s in harvest.left])
        record_result(system, result, gpus=run.gpus)
        return result.model_dump()


# Retried when Ray loses the worker or node running it (never when the run's own code
# fails: that is a result). A retry starts the run afresh in a wiped scratch folder.
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
