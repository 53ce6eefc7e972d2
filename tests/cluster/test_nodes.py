"""Losing a node in the middle of an experiment, on a real two-node Ray cluster
(``node_worker`` builds it in a process of its own)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a whole project or a cluster of its own: `pytest -m 'not slow'` skips it

ROOT = Path(__file__).resolve().parents[2]


def _node_worker(root: Path, mode: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "tests.cluster.node_worker", str(root), mode], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The worker's last JSON line: Ray's own driver lines ("(raylet) Task ... failed. There are
    # infinite retries remaining") may come after it when a node is removed.
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def test_a_run_on_a_removed_node_is_retried_on_the_remaining_one(tmp_path):
    out = _node_worker(tmp_path, "run")
    # The preemption drain was accepted and visible to the orchestrators' pause hook.
    assert out["drain_accepted"] and out["seen_draining"]
    # The run started on the worker, died with it, started again on the head and finished.
    assert out["result"]["status"] == "ok" and out["result"]["node"] != out["worker"], out
    assert [k for k, _ in out["events"]] == ["experiment_start", "experiment_start", "experiment"], out["events"]


def test_a_project_whose_worker_node_is_removed_mid_run_finishes(tmp_path):
    out = _node_worker(tmp_path, "project")
    assert out["result"]["stop_reason"].startswith("every phase is done; submission: submission/submission.csv "
                                                   "is in place"), out["result"]
    assert out["result"]["grade"]["valid_submission"], out["result"]
    starts = Counter(s.split(":")[0] for k, s in out["events"] if k == "experiment_start")
    results = [s for k, s in out["events"] if k == "experiment"]
    # Every run has one result, all ok; the one on the worker when it went started twice.
    assert len(results) == len(starts) == 6 and all(": ok " in r for r in results), out["events"]
    assert max(starts.values()) == 2, starts
