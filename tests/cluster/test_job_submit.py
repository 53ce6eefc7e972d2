"""`ray job submit --working-dir . -- aisci run ...` (and a sweep of a paper) against a real
`ray start --head`, with Ray's token authentication on (as Ray 2.60 has it for local clusters)."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from bus import Bus

pytestmark = pytest.mark.slow  # a whole project or a cluster of its own: `pytest -m 'not slow'` skips it

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_ray_job_submit_runs_a_task_on_a_head_node(tmp_path):
    gcs, dash, agent_http, agent_grpc, metrics, client = (free_port() for _ in range(6))
    env = dict(os.environ, RAY_AUTH_MODE="token", PATH=f"{BIN}:{os.environ['PATH']}")
    env.pop("RAY_ADDRESS", None)
    # --block: the cluster lives as long as this process, and goes with it. A short
    # temp dir: Ray's unix sockets live there, and socket paths are limited to 107 bytes.
    ray_tmp = tempfile.mkdtemp(prefix="rj", dir="/tmp")
    log = open(tmp_path / "head.log", "w")
    head = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--block", f"--port={gcs}",
                             f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1", "--num-cpus=2",
                             # its own ports: the test session's cluster holds Ray's defaults
                             f"--dashboard-agent-listen-port={agent_http}", f"--dashboard-agent-grpc-port={agent_grpc}",
                             f"--metrics-export-port={metrics}", f"--ray-client-server-port={client}",
                             "--disable-usage-stats", f"--temp-dir={ray_tmp}"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while True:  # the job server answers (401 without a token) once the head is up
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{dash}/api/version", timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                assert time.time() < deadline, "the Ray head did not come up:\n" + (tmp_path / "head.log").read_text()[-3000:]
                time.sleep(1)
        root = tmp_path / "bus"
        for _ in range(30):  # the head's job agent can come up seconds after its HTTP server
            out = subprocess.run(
                [str(BIN / "ray"), "job", "submit", "--address", f"http://127.0.0.1:{dash}", "--working-dir", ".",
                 "--", "python", "-m", "cluster.cli", "--root", str(root), "run", "benchmarks/mlebench/tasks/breast-cancer",
                 "--project", "job-bc"],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
            if "No available agent" not in out.stderr + out.stdout:
                break
            time.sleep(2)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert "succeeded" in out.stdout + out.stderr
        grade = Bus(root).project("job-bc").as_role("viewer").read("report/grade.json")
        assert '"valid_submission": true' in grade
        # A sweep of the shipped paper the same way (PaperBench Code-Dev, the scripted judge):
        # its end runs as a Ray task on the head, and the grade lands on the bus.
        sweep = tmp_path / "papers.yaml"
        sweep.write_text("name: jp\npapers: [scaling-knn-vs-forest]\npaper: {judge: scripted, code_dev: true}\n"
                         "budget: 10m\nagents: 2\n")
        out = subprocess.run(
            [str(BIN / "ray"), "job", "submit", "--address", f"http://127.0.0.1:{dash}", "--working-dir", ".",
             "--", "python", "-m", "cluster.cli", "--root", str(root), "sweep", str(sweep)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0 and "succeeded" in out.stdout + out.stderr, out.stdout[-3000:] + out.stderr[-3000:]
        paper = Bus(root).project("jp-scaling-knn-vs-forest-default-s0").as_role("viewer")
        assert '"code_only": true' in paper.read("report/paperbench.json")
        # Without the token the job server refuses: authentication stayed on.
        refused = subprocess.run([str(BIN / "ray"), "job", "list", "--address", f"http://127.0.0.1:{dash}"],
                                 env={**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(tmp_path / "none")},
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0
    finally:
        head.terminate()
        head.wait(timeout=60)
        shutil.rmtree(ray_tmp, ignore_errors=True)
