"""Losing a node in the middle of an experiment, on a real two-node Ray cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_run_on_a_removed_node_is_retried_on_the_remaining_one(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tests.cluster.node_worker", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # The preemption drain was accepted and visible to the orchestrators' pause hook.
    assert out["drain_accepted"] and out["seen_draining"]
    # The run started on the worker, died with it, started again on the head and finished.
    assert out["result"]["status"] == "ok" and out["result"]["node"] != out["worker"], out
    assert [k for k, _ in out["events"]] == ["experiment_start", "experiment_start", "experiment"], out["events"]
