"""`aisci` starts its own local cluster unless told which to join (issue 10, kind 11:
with a `ray start` head on the machine, `aisci run` joined it, and the driver's
endpoint settings never reached the actors there)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a whole project or a cluster of its own: `pytest -m 'not slow'` skips it

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PROBE = "from cluster.run import connect; connect(); import ray; print('GCS', ray.get_runtime_context().gcs_address)"


def _gcs(env: dict) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    return next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("GCS"))


def test_a_cluster_someone_started_is_joined_only_when_asked(tmp_path):
    # A private Ray temp dir (short: Ray's socket paths are limited), so that this head is
    # the machine's "current cluster" for these processes only.
    ray_tmp = tempfile.mkdtemp(prefix="rc", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=ray_tmp, PATH=f"{BIN}:{env['PATH']}")
    port = 46000 + os.getpid() % 1000
    head = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
                             "--include-dashboard=false", "--disable-usage-stats"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        marker = Path(ray_tmp) / "ray" / "ray_current_cluster"
        for _ in range(120):
            if marker.exists():
                break
            time.sleep(0.5)
        assert marker.exists(), "the head did not come up"
        theirs = f"{marker.read_text().split()[0]}"
        assert theirs.endswith(f":{port}")
        assert _gcs(env) != theirs  # not asked: a new local cluster of our own
        assert _gcs({**env, "RAY_ADDRESS": theirs, "RAY_AUTH_MODE": "token"}) == theirs  # asked: joined
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)
        subprocess.run(["pkill", "-9", "-f", ray_tmp], check=False)
