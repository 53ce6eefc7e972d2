"""What the sandbox tests share: the runner as the orchestrator calls it, the planted
secrets a hostile run would look for, and a wait for processes to be gone."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import cluster
from actors.runs import RunPolicy, make_spec
from cluster.experiments import run_experiment

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="escapes as root need root (CI runs as root)")

CHECKOUT = Path(cluster.__file__).resolve().parents[1]
SHIPPED_ANSWERS = CHECKOUT / "benchmarks" / "mlebench" / "tasks" / "diabetes" / "prepared" / "private" / "answers.csv"


def run(bus, name, command, hide=(), project="exp", **settings):
    """Run ``command`` as run ``name``: ``settings`` are the operator's policy fields
    (sandbox, network, tmp_mb...) and the request's resources (memory_mb, gpus...)."""
    fields = set(RunPolicy.model_fields)
    policy = RunPolicy(**{k: v for k, v in settings.items() if k in fields})
    resources = {k: v for k, v in settings.items() if k not in fields}
    spec = make_spec(name, command, policy, hidden=tuple(str(h) for h in hide), **resources)
    return run_experiment(bus.config.model_dump(mode="json"), project, spec.model_dump(mode="json"))


def log(proj, name) -> str:
    return proj.as_role("viewer").read(f"experiments/{name}/output.log")


def gone(marker: str, wait_s: float = 3.0) -> bool:
    """No process whose command line holds ``marker`` (waits a little: SIGKILL is async)."""
    deadline = time.monotonic() + wait_s
    while subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
