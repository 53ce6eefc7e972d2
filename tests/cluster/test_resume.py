"""Losing every process at any moment costs at most the work in flight.

A scripted project (``resume_worker``) is SIGKILLed at 20 random moments, each time
resumed to the end, and compared with an uninterrupted run: the same subtasks and
runs completed (each exactly once), the same files with the same content, logs
without a record lost or doubled, and an index that needs no repair afterwards.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actors.state import State
from bus import Bus
from bus.repair import repair

pytestmark = pytest.mark.slow  # a whole project or a cluster of its own: `pytest -m 'not slow'` skips it

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20
# Differ between any two runs (timings, the ids of LLM transcripts), so not compared.
_VOLATILE = ("logs/llm/",)


def _start(root: Path, project: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.cluster.resume_worker", str(root), project], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(root: Path, project: str) -> dict:
    proc = _start(root, project)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def final_state(bus: Bus, project: str) -> dict:
    """What must not depend on whether (and where) the project was interrupted."""
    events = bus.project(project).events()
    state = State.from_events(events)
    rows = events.to_pylist()
    view = bus.project(project).as_role("viewer")
    files = {}
    for path in view.list():
        if path.startswith(_VOLATILE):
            continue
        text = view.read(path)
        if path.endswith("/result.json"):
            result = json.loads(text)
            text = json.dumps({k: result[k] for k in ("id", "status", "exit_code", "metrics")})
        files[path] = text
    count = lambda kind, key: sorted(key(r) for r in rows if r["kind"] == kind)  # noqa: E731
    return {
        "completed": state.completed,
        "steps": state.steps,
        "decisions": count("decision", lambda r: r["path"]),
        "completes": count("complete", lambda r: r["subtask"]),
        "results": count("experiment", lambda r: (r["run"], r["status"])),
        "stopped": count("stopped", lambda r: r["summary"]),
        "files": files,
    }


def test_killed_at_20_random_moments_each_resumes_to_the_uninterrupted_result(tmp_path):
    reference_root = tmp_path / "reference"
    proc = _start(reference_root, "p")
    assert proc.stdout.readline().strip() == "started"
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=120)
    duration = time.monotonic() - t0  # the kill window: from the end of the imports to the end
    assert json.loads(out.strip().splitlines()[-1])["stop_reason"].startswith("every phase is done; submission: submission/submission.csv is in place"), err[-2000:]
    expected = final_state(Bus(reference_root), "p")
    assert expected["completed"] == {"analyse-1": True, "implement-1": True, "experiment-1": True, "submit-1": True}
    assert expected["results"] == [("p0", "ok"), ("p1", "ok"), ("p2", "ok")]

    rng = random.Random(int(os.environ.get("AISCI_KILL_SEED", "20261127")))
    redone = 0
    for n in range(KILLS):
        root = tmp_path / f"kill-{n}"
        at = rng.uniform(0, duration)
        proc = _start(root, "p")
        assert proc.stdout.readline().strip() == "started"
        time.sleep(at)
        proc.send_signal(signal.SIGKILL)  # its experiments die with it (PR_SET_PDEATHSIG)
        proc.communicate()
        bus = Bus(root)
        before = State.from_events(bus.project("p").events()) if "p" in bus.projects() else None
        outcome = _finish(root, "p")
        assert outcome["stop_reason"].startswith("every phase is done; submission: submission/submission.csv is in place"), (n, at, outcome)
        got = final_state(bus, "p")
        diff = {p: (got["files"].get(p), expected["files"].get(p)) for p in set(got["files"]) | set(expected["files"])
                if got["files"].get(p) != expected["files"].get(p)}
        assert got == expected, f"kill {n} at {at:.3f} s differs: {diff}"
        # Finished work is never run again; what was in flight ran once more (same id).
        state = State.from_events(bus.project("p").events())
        if before is not None:
            for sid, ok in before.completed.items():
                assert state.dispatches[sid] == before.dispatches[sid], (sid, n, at)
            again = {s for s, k in state.dispatches.items() if k > 1}
            assert again <= before.in_flight | {r.id for r in before.pending_runs}, (again, n, at)
            redone += len(again)
        assert repair(bus, "p").clean, f"kill {n}: the index needed repair after the resume"
    print(f"{KILLS} kills, {redone} subtasks or runs re-dispatched")


def test_a_stopped_project_is_left_as_it_is(tmp_path):
    _finish(tmp_path, "p")
    before = Bus(tmp_path).project("p").events().num_rows
    assert _finish(tmp_path, "p")["stop_reason"].startswith("every phase is done; submission: submission/submission.csv is in place")
    # Nothing is decided, dispatched or written again.
    after = Bus(tmp_path).project("p").events().to_pylist()[before:]
    assert [e["kind"] for e in after] == [], after


@pytest.mark.parametrize("signal_name", ["pause_requested"])
def test_a_pause_request_stops_dispatching_and_resume_continues(tmp_path, signal_name):
    bus = Bus(tmp_path)
    bus.create_project("p").as_role("system", "preemption").record(signal_name, "spot notice (test)")
    assert _finish(tmp_path, "p")["stop_reason"] == "paused: spot notice (test)"
    kinds = [e["kind"] for e in bus.project("p").events().to_pylist()]
    assert "dispatch" not in kinds and kinds[-1] == "paused"
    bus.project("p").as_role("system", "resume").record("resumed", "by the test")
    assert _finish(tmp_path, "p")["stop_reason"].startswith("every phase is done; submission: submission/submission.csv is in place")
