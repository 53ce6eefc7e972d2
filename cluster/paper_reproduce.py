"""A paper project's reproduction, as PaperBench runs it, in our sandbox.

PaperBench copies the submission into a fresh container and runs ``bash reproduce.sh``
there under a time limit (``paperbench/reproduce.py``). Ours: the submission's files as
the bus holds them (``export_submission``: a fresh copy, as ``git clean -xdf`` leaves a
checkout: no venv, no caches, nothing a run left behind) go into a scratch folder, made a
git repository (one commit per bus version of a submission file: what the judge grades is
named by the last hash), then
``reproduce.sh`` runs there as an experiment runs (``cluster.sandbox``: bubblewrap, no
network unless the operator allows it, the operator's memory, disk and process limits, the
paper's folder, with its rubric, hidden), its output streamed into ``reproduce.log``.
The files are dated before the start and the start written to
``reproduce.log.creation_time`` by the library (``benchmarks.paperbench.prepare_reproduction``),
so only what the script writes counts as reproduced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

import pyarrow.compute as pc

from actors.runs import RunPolicy
from benchmarks.paperbench import Reproduction, prepare_reproduction
from benchmarks.paperbench.submission import SKIPPED_DIRS
from bus import BusError, Project, RoleView

from . import confine, sandbox, scratch
from .experiments import _stream_output

__all__ = ["LOG_CAP_BYTES", "RUN_ID", "absolute_paths", "export_submission", "reproduce", "reproduction_start",
           "submission_files", "submission_history", "workspace_paths", "written_files"]

RUN_ID = "reproduce"
LOG_CAP_BYTES = 20_000_000  # the judge reads the first 200 kB; the rest is kept for people, up to this


MAX_COMMITS = 1000  # versions past this are folded into the last commit (a model rewriting a file in a loop)


def export_submission(files: dict[str, bytes], dest: str | Path,
                      history: list[tuple[str, bytes, str]] = ()) -> list[str]:
    """Make ``dest`` a git repository of the submission: one commit per bus version of a
    ``submission/`` file (``history``: (path, content, message) in the bus's order), then
    the final files (``files``: path -> content, the latest versions) as they are. Paths in
    skipped folders (venv, caches: PaperBench's judge skips them too) are left out, so the
    copy is what ``git clean -xdf`` leaves. The .git folder is removed again: the
    reproduction gets the files, as PaperBench's fresh copy. Returns the commits' hashes,
    oldest first ([] where git is not installed or fails: the files are written anyway)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)

    def put(rel: str, data: bytes) -> bool:
        if any(s in part for s in SKIPPED_DIRS for part in Path(rel).parts[:-1]):
            return False
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return True

    git = shutil.which("git")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_AUTHOR_NAME": "aisci",
           "GIT_AUTHOR_EMAIL": "aisci@localhost", "GIT_COMMITTER_NAME": "aisci",
           "GIT_COMMITTER_EMAIL": "aisci@localhost", "HOME": str(dest)}
    # safe.directory: the folder belongs to the run's uid when the runner is root.
    base = [git or "git", "-c", f"safe.directory={dest}", "-C", str(dest)]
    commits: list[str] = []

    def commit(message: str) -> None:
        subprocess.run([*base, "add", "-A"], check=True, env=env, capture_output=True)
        subprocess.run([*base, "commit", "-q", "--allow-empty", "-m", message[:500]], check=True, env=env,
                       capture_output=True)
        head = subprocess.run([*base, "rev-parse", "HEAD"], check=True, env=env, capture_output=True)
        commits.append(head.stdout.decode().strip())

    try:
        if git is not None:
            subprocess.run([*base, "init", "-q"], check=True, env=env, capture_output=True)
            for rel, data, message in list(history)[:MAX_COMMITS]:
                if put(rel, data):
                    commit(message)
        for rel, data in sorted(files.items()):
            put(rel, data)
        if git is not None:
            status = subprocess.run([*base, "status", "--porcelain"], check=True, env=env, capture_output=True)
            if status.stdout.strip() or not commits:
                commit("the submission as the bus holds it at the end")
    except subprocess.CalledProcessError as e:  # no history; the reproduction goes on without one
        logging.getLogger(__name__).warning("git on the submission's copy: %s", e.stderr.decode()[-300:])
        commits = []
        for rel, data in sorted(files.items()):
            put(rel, data)
    finally:
        shutil.rmtree(dest / ".git", ignore_errors=True)
    return commits


def submission_files(system: RoleView) -> dict[str, bytes]:
    """The latest version of every submission/ file (path relative to submission/ -> content)."""
    return {p[len("submission/"):]: system.read_bytes(p) for p in system.list("submission")}


def submission_history(proj: Project, system: RoleView) -> list[tuple[str, bytes, str]]:
    """Every version of a submission/ file, in the bus's order: (path, content, message)."""
    events = proj.events()
    rows = events.filter(pc.starts_with(events.column("path"), "submission/")).to_pylist()
    out = []
    for r in rows:
        if r["kind"] not in ("write", "append", "recovered") or r["version"] is None:
            continue
        try:
            data = system.read_version(r["path"], r["version"])
        except BusError:  # a version no longer readable: the final files are written anyway
            continue
        out.append((r["path"][len("submission/"):], data,
                    f"{r['path']} v{r['version']} by {r['instance']}: {r['summary'] or ''}"))
    return out


def workspace_paths(bus, project: Project, files: dict[str, bytes]) -> list[str]:
    """``absolute_paths`` of this workspace: the project's folder and the bus's root,
    resolved or not, the most precise first (the end's refusal and the self-check's)."""
    roots = [str(project.dir.resolve()), str(project.dir), str(bus.root.resolve()), str(bus.root)]
    return absolute_paths(files, list(dict.fromkeys(roots)))


def reproduction_start(folder: Path) -> float | None:
    """When the reproduction in ``folder`` started, as its runner wrote it before the
    script ran (``reproduce.log.creation_time``; the script could rewrite it: a hint)."""
    try:
        return float((folder / "reproduce.log.creation_time").read_text().strip())
    except (OSError, ValueError):
        return None


def written_files(folder: Path, given: set[str], started: float):
    """(path relative to ``folder``, path, size) of the regular files the reproduction made
    or changed: not among ``given``, or dated at or after ``started`` (the copy is dated
    before it, ``prepare_reproduction``); links never followed, the runner's
    reproduce.log* left out, in a stable order."""
    for here, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(here, d)))
        for name in sorted(names):
            path = Path(here) / name
            rel = path.relative_to(folder).as_posix()
            if rel in ("reproduce.log", "reproduce.log.creation_time") or path.is_symlink() or not path.is_file():
                continue
            st = path.stat()
            if st.st_mtime < started and rel in given:
                continue
            yield rel, path, st.st_size


def absolute_paths(files: dict[str, bytes], forbidden: list[str]) -> list[str]:
    """``path: the absolute path`` for each file naming one of ``forbidden`` (the bus's
    root, the project's folder: paths of this workspace, which a fresh copy elsewhere
    does not have; PaperBench runs the submission from another folder)."""
    found = []
    for rel, data in sorted(files.items()):
        for root in forbidden:
            if root and root.encode() in data:
                found.append(f"{rel}: {root}")
                break
    return found


def reproduce(files: dict[str, bytes], scratch_dir: str, timeout_s: float, policy: RunPolicy,
              hidden: tuple[str, ...], cpus: float = 1.0,
              history: list[tuple[str, bytes, str]] = (), gpus: float = 0.0) -> tuple[Reproduction, Path, list[str]]:
    """Run the submission's reproduce.sh in a fresh copy under ``scratch_dir``.

    Returns (what the run did, the reproduced folder, the copy's git commits). The folder
    is the caller's to grade and then wipe. ``gpus``: the GPUs Ray gave the caller, shown to
    the script (their devices mounted; CUDA_VISIBLE_DEVICES kept by ``sandbox.run_env``).
    Raises ``sandbox.MountRefused`` where a mount would show a hidden path,
    ``SandboxUnavailable`` where bubblewrap is missing."""
    slot = confine.UidSlot() if policy.sandbox == "bwrap" and os.geteuid() == 0 else None
    with slot or contextlib.nullcontext():
        uid = slot.uid if slot else None
        work = scratch.make(scratch_dir, RUN_ID, None, uid)
        commit = export_submission(files, work, history)
        if uid is not None:
            for here, dirs, names in os.walk(work):
                for name in dirs + names:
                    os.lchown(os.path.join(here, name), uid, uid)
        started = prepare_reproduction(work)
        log_path = Path(scratch_dir) / "reproduce.log"  # outside the copy: the script cannot rewrite it
        if not (Path(work) / "reproduce.sh").is_file():
            log_path.write_text("reproduce.sh not found\n")
            shutil.copyfile(log_path, Path(work) / "reproduce.log")
            os.utime(Path(work) / "reproduce.log", (started, started))
            return Reproduction(repro_script_exists=False, exit_code=None, timed_out=False,
                                repro_execution_time_s=0.0, log_bytes=log_path.stat().st_size), Path(work), commit
        env = sandbox.run_env(policy, RUN_ID, cpus)
        procs = policy.max_procs if uid is not None else confine.tasks_of_uid(os.getuid()) + policy.max_procs
        limits = {"CORE": 0, "FSIZE": policy.disk_mb << 20, "AS": policy.memory_mb << 20, "NPROC": procs}
        if policy.sandbox == "bwrap":
            binds = sandbox.binds_for(scratch_dir, work, RUN_ID, policy, gpus)
            sandbox.refuse_hidden(binds, hidden, policy.ro_mounts)
            cwd = os.path.join(scratch_dir, "experiments", RUN_ID)
            spawn = lambda: sandbox.start(binds, "bash reproduce.sh", env, cwd, policy.network,
                                          policy.tmp_mb, limits, uid)
        else:  # the operator trusts the code (--allow-unsandboxed)
            tmp = os.path.join(scratch_dir, "tmp")
            os.makedirs(tmp, exist_ok=True)
            env.update(HOME=tmp, TMPDIR=tmp)
            plan = {"argv": [shutil.which("bash") or "/bin/bash", "reproduce.sh"], "env": env, "cwd": work,
                    "rlimits": limits, "uid": None, "reap": True}
            spawn = lambda: (confine.spawn(plan), None)
        t0 = time.monotonic()
        proc, ready = spawn()
        with open(log_path, "wb") as log:
            try:
                stop, _ = _stream_output(proc, lambda chunk: (log.write(chunk), log.flush()), LOG_CAP_BYTES,
                                         t0 + timeout_s, lambda: None)
            finally:
                confine.stop(proc, uid)
                up = sandbox.started(ready) if ready is not None else True
            if stop == "timeout":
                log.write(f"\n(reproduce.sh killed after the {timeout_s:g} s limit)\n".encode())
            if not up:
                log.write(b"\n(the sandbox could not start: reproduce.sh did not run)\n")
        duration = time.monotonic() - t0
        shutil.copyfile(log_path, Path(work) / "reproduce.log")  # ours, whatever the script wrote there
        return Reproduction(repro_script_exists=True, exit_code=None if stop or not up else proc.returncode,
                            timed_out=stop == "timeout", repro_execution_time_s=duration,
                            log_bytes=log_path.stat().st_size), Path(work), commit

