"""Where the ``run`` tool's commands execute: the experiments' sandbox, in the agent's
process (``actors.quick_run`` has the tool; this is its ``Executor``).

The same allow-list as a run (``cluster.sandbox.binds_for``, ``refuse_hidden``): the
interpreter, the system's files, the project's folders the role may read, read-only,
and no task's private answers; no network unless the operator allows it; the run's
uid, rlimits and no survivors (``cluster.confine``). The differences, all tighter:

- the writable folder is a scratch copy of ``code/`` (the command's working folder),
  so ``python train.py --check`` and ``sed -i`` work; what it made or changed there
  goes back to the agent, which writes it through its own view (its scope decides);
- a time limit of at most ``actors.quick_run.MAX_TIMEOUT_S``, /tmp of at most 256 MB,
  a disk quota of at most 1 GB (the watchdog of experiments, ``scratch.usage``);
- the settings come from the operator's job (``<root>/operator/<project>/job.json``),
  or from the policy the executor was built with (tests, in-process projects);
  a project with neither is refused, never run with defaults.

It runs in the agent's process, not as a Ray task. Measured
(``benchmarks/perf/quick_run_bench.py --ray``, 2-core VM at load 3): ``true`` through
the tool, p50 75 ms / p95 116 ms sandboxed, 44 / 88 ms unsandboxed; the executor as a
warm Ray task with ``num_cpus=0.25``, 71 / 116 ms: Ray adds nothing measurable, but a
task that asks for a CPU queues behind experiments holding every CPU (a 60 s check
waiting for an hour-long run), and one that asks for none is this with extra steps.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import time
import uuid

from actors.blacklist import blocked_source
from actors.quick_run import (
    OUTPUT_HEAD_CHARS,
    OUTPUT_TAIL_CHARS,
    QuickRequest,
    QuickResult,
)
from actors.runs import RunPolicy
from actors.self_check import SelfCheck
from bus import Bus, BusConfig, NotFound

from . import confine, sandbox, scratch
from .job import load_job
from .paper_selfcheck import self_check

__all__ = ["SandboxExecutor", "QUICK_TMP_MB", "QUICK_DISK_MB"]

QUICK_TMP_MB, QUICK_DISK_MB = 256, 1024
_COPY_MAX_FILES, _COPY_MAX_BYTES = 5_000, 256 * 1024 * 1024  # the code/ copied in
_BACK_MAX_FILE, _BACK_MAX_FILES, _BACK_MAX_BYTES = 4 * 1024 * 1024, 100, 32 * 1024 * 1024  # what comes back
_IGNORED = ("__pycache__", ".ipynb_checkpoints")  # made by running code, not written by anyone
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class SandboxExecutor:
    """``Executor`` for the ``run`` tool. Picklable (a Ray actor holds one).

        >>> run = SandboxExecutor(bus.config)                                  # doctest: +SKIP
        >>> run(QuickRequest(project="iris", instance="coder-s1", command="python -V",
        ...                  timeout_s=60, folders=("task", "code")))            # doctest: +SKIP
    """

    def __init__(self, bus_config: BusConfig | dict, policy: RunPolicy | None = None, hidden: tuple[str, ...] = ()):
        """``policy``/``hidden``: for every project (tests); None: each project's job's."""
        self.bus_config = BusConfig.model_validate(bus_config).model_dump(mode="json")
        self.policy, self.hidden = policy, tuple(hidden)

    def _settings(self, bus: Bus, project: str) -> tuple[RunPolicy, tuple[str, ...]] | None:
        if self.policy is not None:
            return self.policy, self.hidden
        try:
            job = load_job(bus, project)
        except NotFound:
            return None
        return job.run_policy, tuple(job.hidden)

    def reproduce_submission(self, project: str, instance: str, timeout_s: float | None) -> SelfCheck:
        """The ``check_reproduction`` tool (``actors.self_check``): the grader's reproduction
        of a paper project's submission, now (``cluster.paper_selfcheck``)."""
        bus = Bus(config=BusConfig.model_validate(self.bus_config))
        settings = self._settings(bus, project)
        if settings is None:
            return SelfCheck(status="refused", reason=f"project {project!r} has no operator's run policy (it was not "
                             "started by `aisci paper`): nothing runs without one")
        policy, hidden = settings
        if policy.sandbox == "bwrap" and not (probe := sandbox.probe()).ok:
            return SelfCheck(status="refused", reason=f"the sandbox cannot start on this node: {probe.reason}")
        return self_check(bus, project, instance, timeout_s, policy, hidden)

    def __call__(self, request: QuickRequest) -> QuickResult:
        bus = Bus(config=BusConfig.model_validate(self.bus_config))
        settings = self._settings(bus, request.project)
        if settings is None:
            return QuickResult(status="refused", reason=f"project {request.project!r} has no operator's run policy "
                               "(it was not started by `aisci run`): nothing runs without one")
        policy, hidden = settings
        if (source := blocked_source(request.command, policy.blocked_sources)) is not None:
            return QuickResult(status="refused", reason=f"the command names {source}, a source this paper's "
                               "blacklist forbids (PaperBench disqualifies a reproduction that uses one)")
        if policy.sandbox == "bwrap" and not (probe := sandbox.probe()).ok:
            return QuickResult(status="refused", reason=f"the sandbox cannot start on this node: {probe.reason}")
        root = str(bus.root / "scratch" / request.project / "quick" / f"{request.instance}-{uuid.uuid4().hex[:8]}")
        project_dir = str(bus.project(request.project).dir)
        slot = confine.UidSlot() if policy.sandbox == "bwrap" and os.geteuid() == 0 else None
        try:
            with slot or contextlib.nullcontext():
                return _execute(request, policy, hidden, str(bus.root), project_dir, root, slot.uid if slot else None)
        finally:
            scratch.wipe(root)


def _execute(request: QuickRequest, policy: RunPolicy, hidden: tuple[str, ...], bus_root: str, project_dir: str,
             root: str, uid: int | None) -> QuickResult:
    code = os.path.join(root, "code")
    try:
        before = _copy_code(os.path.join(project_dir, "code"), code, uid)
    except _TooBig as e:
        return QuickResult(status="refused", reason=str(e))
    disk_mb = min(policy.disk_mb, QUICK_DISK_MB)
    procs = policy.max_procs if uid is not None else confine.tasks_of_uid(os.getuid()) + policy.max_procs
    rlimits = {"CORE": 0, "FSIZE": disk_mb << 20, "NPROC": procs, "AS": policy.memory_mb << 20}
    env = sandbox.run_env(policy, f"quick-{request.instance}", 1)
    roots = [code]
    if policy.sandbox == "bwrap":
        inside = os.path.join(project_dir, "code")
        keep = {os.path.join(project_dir, f) for f in request.folders if f != "code"}
        binds = [b for b in sandbox.binds_for(project_dir, os.path.join(root, "unused"), "quick", policy, 0)
                 if not b.dest.startswith(project_dir + "/") or b.dest in keep]
        binds.append(sandbox.Bind(code, inside, "rw"))
        try:
            sandbox.refuse_hidden(binds, hidden, policy.ro_mounts, bus_root)
        except sandbox.MountRefused as e:
            return QuickResult(status="refused", reason=str(e))
        spawn = lambda: sandbox.start(binds, request.command, env, inside, policy.network,  # noqa: E731
                                      min(policy.tmp_mb, QUICK_TMP_MB), rlimits, uid)
    else:  # the operator trusts the code: links to the readable folders beside the copy, as runs get
        tmp = os.path.join(root, "tmp")
        os.mkdir(tmp, 0o700)
        for folder in request.folders:
            if folder != "code" and os.path.isdir(os.path.join(project_dir, folder)):
                os.symlink(os.path.join(project_dir, folder), os.path.join(root, folder))
        env.update(HOME=tmp, TMPDIR=tmp)
        roots.append(tmp)
        plan = {"argv": [shutil.which("bash") or "/bin/bash", "-c", request.command], "env": env, "cwd": code,
                "rlimits": rlimits, "uid": None, "reap": True}
        spawn = lambda: (confine.spawn(plan), None)  # noqa: E731
    t0 = time.monotonic()
    proc, ready = spawn()
    try:
        stop, output, size = _collect(proc, t0 + request.timeout_s, roots, disk_mb, policy.max_files)
    finally:
        confine.stop(proc, uid)
        up = sandbox.started(ready) if ready is not None else True
    duration = round(time.monotonic() - t0, 3)
    if not up:
        said = ([line for line in output.splitlines() if line.strip()] or ["no output"])[-1][:300]
        return QuickResult(status="refused", duration_s=duration, output=output, output_bytes=size,
                           reason=f"the sandbox could not start the command: {said}")
    changed, deleted, skipped = _changes(code, before)
    common = dict(duration_s=duration, output=output, output_bytes=size, changed=changed, deleted=deleted,
                  skipped=skipped)
    if stop == "timeout":
        return QuickResult(status="timeout", **common)
    if stop:
        return QuickResult(status="killed", reason=stop, **common)
    code_ = proc.returncode
    if code_ == 0:
        return QuickResult(status="ok", exit_code=0, **common)
    why = "out of memory" if "MemoryError" in output or "Cannot allocate memory" in output else ""
    return QuickResult(status="failed", exit_code=code_, reason=why, **common)


class _TooBig(Exception):
    pass


def _copy_code(src: str, dst: str, uid: int | None) -> dict[str, str]:
    """Copy the project's code/ (regular files; links never followed) to ``dst``, owned
    by ``uid`` and writable; returns path -> sha256 of what was copied."""
    os.makedirs(dst, mode=0o755)
    hashes, total = {}, 0
    for rel, data in _files(src, _COPY_MAX_FILES + 1, None, {}):
        total += len(data)
        if len(hashes) >= _COPY_MAX_FILES or total > _COPY_MAX_BYTES:
            raise _TooBig(f"code/ holds more than {_COPY_MAX_FILES} files or {_COPY_MAX_BYTES >> 20} MB: too much to "
                          "copy for a quick command; launch_experiment runs over the project's code as it is")
        path = os.path.join(dst, rel)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        hashes[rel] = hashlib.sha256(data).hexdigest()
    if uid is not None:
        for folder, dirs, names in os.walk(dst):
            for name in [folder, *(os.path.join(folder, n) for n in dirs + names)]:
                os.lchown(name, uid, uid)
    return hashes


def _files(top: str, max_files: int, max_file_bytes: int | None, skipped: dict[str, str]):
    """(path relative to ``top``, content) of the regular files under ``top``, walked
    without following links; what is not taken goes to ``skipped`` with why."""
    if not os.path.isdir(top):
        return
    stack, count = [""], 0
    while stack:
        rel_dir = stack.pop()
        try:
            names = sorted(os.listdir(os.path.join(top, rel_dir)))
        except OSError:
            continue
        for name in names:
            rel = os.path.join(rel_dir, name) if rel_dir else name
            if name.startswith(".") or name in _IGNORED or name.endswith(".pyc"):
                continue
            if any(ord(c) < 32 or ord(c) == 127 for c in rel):
                skipped[rel] = "its name holds a control character"
                continue
            try:
                st = os.lstat(os.path.join(top, rel))
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if rel.count("/") < 16:
                    stack.append(rel)
                continue
            if not stat.S_ISREG(st.st_mode):
                skipped[rel] = "not a regular file (a link, a FIFO...): not taken"
                continue
            if max_file_bytes is not None and st.st_size > max_file_bytes:
                skipped[rel] = f"{st.st_size} bytes (more than {max_file_bytes}): write big outputs from an experiment"
                continue
            count += 1
            if count > max_files:
                skipped[rel] = f"more than {max_files} files changed: not taken"
                continue
            try:
                fd = os.open(os.path.join(top, rel), _OPEN)
            except OSError as e:
                skipped[rel] = f"unreadable: {e.strerror}"
                continue
            with os.fdopen(fd, "rb") as f:
                data = f.read(max_file_bytes + 1 if max_file_bytes is not None else -1)
            if max_file_bytes is not None and len(data) > max_file_bytes:
                skipped[rel] = f"more than {max_file_bytes} bytes"
                continue
            yield rel, data


def _changes(code: str, before: dict[str, str]) -> tuple[dict[str, bytes], list[str], dict[str, str]]:
    """What the command made or changed under the copy of code/ (after it is dead)."""
    changed, skipped, total, seen = {}, {}, 0, set()
    for rel, data in _files(code, 10 * _BACK_MAX_FILES, _BACK_MAX_FILE, skipped):
        seen.add(rel)
        if before.get(rel) == hashlib.sha256(data).hexdigest():
            continue
        if len(changed) >= _BACK_MAX_FILES or total + len(data) > _BACK_MAX_BYTES:
            skipped[rel] = f"past {_BACK_MAX_FILES} files or {_BACK_MAX_BYTES >> 20} MB written back: not taken"
            continue
        changed[rel], total = data, total + len(data)
    seen |= set(skipped)
    return changed, sorted(set(before) - seen), skipped


def _collect(proc, deadline: float, roots: list[str], disk_mb: int, max_files: int) -> tuple[str | None, str, int]:
    """Read the command's output until it ends, its deadline ("timeout") or the disk
    watchdog gives a reason to stop; keeps the head and a rolling tail. Returns (why it
    was stopped or None, the output shown, its whole size in bytes)."""
    head, tail, size, due = b"", b"", 0, 0.0
    os.set_blocking(proc.stdout.fileno(), False)
    stop = None
    while True:
        chunk = proc.stdout.read(65536)
        if chunk:
            size += len(chunk)
            if len(head) < OUTPUT_HEAD_CHARS:
                room = OUTPUT_HEAD_CHARS - len(head)
                head, chunk = head + chunk[:room], chunk[room:]
            tail = (tail + chunk)[-OUTPUT_TAIL_CHARS:]
        elif proc.poll() is not None:
            break
        elif time.monotonic() > deadline:
            stop = "timeout"
            break
        else:
            time.sleep(0.005)
        if time.monotonic() >= due:
            used = scratch.usage(roots, disk_mb << 20, max_files)
            due = time.monotonic() + 0.25
            if used.bytes > disk_mb << 20 or used.entries > max_files or used.too_deep:
                stop = f"wrote more than {disk_mb} MB or {max_files} files into code/"
                break
    cut = size - len(head) - len(tail)
    text = head.decode("utf-8", "replace")
    if cut > 0:
        text += f"\n[... {cut} bytes cut ...]\n"
    return stop, text + tail.decode("utf-8", "replace"), size
