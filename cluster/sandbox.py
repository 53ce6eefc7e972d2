"""The sandbox experiment code runs in (bubblewrap, Debian package `bubblewrap`).

What a run can see and do:
- the whole system read-only (Python, the virtualenv, CUDA libraries);
- its project read-only, and its own run folder (``experiments/<id>/``) read-write;
- nothing of the rest of the bus (other projects, the index, the version store),
  nothing of the paths in ``hide`` (a task's private answers), no credentials in the
  home folder (keys, tokens, Ray's auth token), a private /tmp, no network unless allowed;
- GPUs only when the run asked for them (Ray sets CUDA_VISIBLE_DEVICES).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


class SandboxUnavailable(RuntimeError):
    pass


def default_sandbox(trusted_code: bool, allow_unsandboxed: bool) -> str:
    """The sandbox of a new job: ``bwrap`` where bubblewrap runs here; else ``none`` if the
    operator allows unsandboxed runs or no model writes the code (the baseline runs
    aisci's own templates only); else ``SandboxUnavailable`` with what to do."""
    if shutil.which("bwrap"):
        return "bwrap"
    if trusted_code or allow_unsandboxed:
        return "none"
    raise SandboxUnavailable("a model's code runs only in a bubblewrap sandbox, and `bwrap` is not installed: "
                             "`apt-get install bubblewrap`, or --allow-unsandboxed on a machine you trust")


# Credentials a run has no business reading. Home folders themselves stay visible
# (read-only): Python often lives there (pyenv, conda).
_CREDENTIALS = (".ssh", ".aws", ".azure", ".config/gcloud", ".kube", ".docker", ".netrc", ".git-credentials",
                ".ray", ".cache/huggingface", ".huggingface", ".pypirc", ".npmrc")


def _credential_paths() -> list[Path]:
    return [p for p in (Path.home() / c for c in _CREDENTIALS) if p.exists()]


def bwrap_command(command: str, bus_root: Path, project_dir: Path, run_dir: Path, hide: list[str],
                  gpus: bool, network: bool) -> list[str]:
    exe = shutil.which("bwrap")
    if exe is None:
        raise SandboxUnavailable(
            "experiments run in a bubblewrap sandbox, and `bwrap` is not installed: `apt-get install bubblewrap` "
            "(or set sandbox: none in the experiment config, to run code unsandboxed on a machine you trust)"
        )
    args = [exe, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--new-session",
            "--ro-bind", "/", "/", "--proc", "/proc", "--tmpfs", "/tmp"]
    # The interpreter and its virtualenv stay visible (read-only) even where they live
    # under /tmp, which the sandbox replaces (a CI checkout, a Ray job's working dir).
    for keep in sorted({sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}):
        if keep.startswith("/tmp/"):
            args += ["--ro-bind", keep, keep]
    args += ["--dev-bind", "/dev", "/dev"] if gpus else ["--dev", "/dev"]
    if not network:
        args.append("--unshare-net")
    for secret in _credential_paths():
        args += ["--tmpfs", str(secret)] if secret.is_dir() else ["--ro-bind", "/dev/null", str(secret)]
    # Order matters: hide the bus, then show this project read-only, then the run folder writable.
    args += ["--tmpfs", str(bus_root), "--ro-bind", str(project_dir), str(project_dir),
             "--bind", str(run_dir), str(run_dir)]
    for path in hide:
        if Path(path).exists():
            args += ["--tmpfs", str(path)] if Path(path).is_dir() else ["--ro-bind", "/dev/null", str(path)]
    args += ["--chdir", str(run_dir), "--setenv", "HOME", str(run_dir), "bash", "-c", command]
    return args
