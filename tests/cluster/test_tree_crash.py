"""The solution tree survives a SIGKILL at each point between a decision, its
``tree_node`` events, the dispatch of its subtasks and runs, and their results: resumed
from the bus, the tree has every node exactly once (the same nodes as an uninterrupted
search), no run has two results, nothing finished is dispatched again, and the search
ends with a champion (``tree_crash_worker``: 4 drafts, then an ensemble of 3)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from actors.orchestrator import OrchestratorConfig
from actors.state import State
from actors.tree import tree_rows
from bus import Bus
from bus.repair import repair

pytestmark = pytest.mark.slow  # a whole project per crash point

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "t"
# Decisions: analyse, implement, two steps of drafts (2 branches), the ensemble, submit.
POINTS = ["orchestrator_after_decision:3", "orchestrator_after_node:1", "orchestrator_after_node:4",
          "agents_dispatched:3", "agents_done:4", "runs_dispatched:1", "runs_done:2",
          "orchestrator_after_decision:5", "runs_done:3"]


def _run(root: Path, crash_at: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "AISCI_CRASH_AT": crash_at}
    return subprocess.run([sys.executable, "-m", "tests.cluster.tree_crash_worker", str(root)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def _tree(root: Path) -> dict:
    view = Bus(root).project(PROJECT).as_role("viewer")
    out = {}
    for row in tree_rows(Bus(root), [PROJECT]):
        node = json.loads(view.read(f"plan/tree/{row['node']}.json"))
        out[row["node"]] = [node["operator"], node["parent"], list(node["members"]), node["model"],
                            json.dumps(node["params"], sort_keys=True), row["status"], row["score"]]  # as JSON has it
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The uninterrupted search's tree, grown once per session: under pytest-xdist the
    workers share the parent of their temp dirs (xdist's documented way to share a
    fixture), and a lock keeps the second worker reading what the first grew (~15 s of
    CPU each time, grown once per worker before; xdist's loadgroup does not group under
    pytest 9)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _grow(tmp_path_factory.mktemp("reference"))
    shared = tmp_path_factory.getbasetemp().parent  # this session's, one per run
    with open(shared / "tree_crash.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = shared / "tree_crash_reference.json"
        if not saved.exists():
            saved.write_text(json.dumps(_grow(tmp_path_factory.mktemp("reference"))))
        return json.loads(saved.read_text())


def _grow(root: Path) -> dict:
    done = _run(root)
    assert done.returncode == 0, done.stderr[-3000:]
    tree = _tree(root)
    assert [v[0] for v in tree.values()] == ["draft"] * 4 + ["ensemble"], tree
    return tree


@pytest.mark.parametrize("point", POINTS)
def test_killed_at_a_point_of_the_search_resumes_to_the_same_tree_once(tmp_path, reference, point):
    killed = _run(tmp_path, point)
    assert killed.returncode == -9, (point, killed.returncode, killed.stderr[-2000:])  # it reached the point
    before_events = Bus(tmp_path).project(PROJECT).events().to_pylist()
    before = State.from_events(Bus(tmp_path).project(PROJECT).events())
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "submission/submission.csv is in place" in json.loads(done.stdout.splitlines()[-1])["stop_reason"]
    events = Bus(tmp_path).project(PROJECT).events().to_pylist()
    nodes = Counter(e["subtask"] for e in events if e["kind"] == "tree_node")
    assert set(nodes.values()) == {1}, nodes  # each node recorded exactly once
    results = Counter(e["run"] for e in events if e["kind"] == "experiment")
    assert set(results.values()) == {1}, results  # no run doubled
    assert _tree(tmp_path) == reference  # the same nodes, parents, members and scores
    # Finished work is never dispatched again; only what was in flight is (a node's
    # subtask and its run share the node's id: counted apart).
    for column, finished in (("subtask", set(before.completed)), ("run", {r.id for r in before.runs if r.status})):
        was, now = (Counter(e[column] for e in rows if e["kind"] == "dispatch" and e[column])
                    for rows in (before_events, events))
        assert all(now[i] == was[i] for i in finished), (column, point)
        in_flight = set(was) - finished
        assert {i for i, k in now.items() if k > 1} <= in_flight, (column, point, now)
    view = Bus(tmp_path).project(PROJECT).as_role("viewer")
    config = OrchestratorConfig.model_validate_json(view.read("plan/config.json"))  # the metric's direction
    state = State.from_events(Bus(tmp_path).project(PROJECT).events(), config)
    candidates = json.loads(view.read("plan/candidates.json"))
    assert candidates and candidates[0]["run"] == state.best_run.id  # the champion
    assert repair(Bus(tmp_path), PROJECT).clean
