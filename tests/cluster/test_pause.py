"""Spot preemption as a user meets it: SIGTERM to `aisci run` pauses the project
(nothing new dispatched, the pause on the bus, exit code 75), and `aisci resume`
continues it to a graded submission without redoing finished work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actors.state import State
from benchmarks.mlebench.task import shipped_tasks
from bus import Bus
from cluster.ray_noise import is_ray_noise
from tests.cluster.test_cli_truth import RAY_SAYS

pytestmark = pytest.mark.slow  # a whole project or a cluster of its own: `pytest -m 'not slow'` skips it

ROOT = Path(__file__).resolve().parents[2]


def _aisci(root: Path, *args: str, **kw) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.Popen([sys.executable, "-m", "cluster.cli", "--root", str(root), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _wait_for(bus: Bus, project: str, kind: str, prefix: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if project in bus.projects() and any(
                e["kind"] == kind and (e["summary"] or "").startswith(prefix)
                for e in bus.project(project).events().to_pylist()):
            return
        time.sleep(0.2)
    raise AssertionError(f"no {kind} {prefix!r} within {timeout} s")


def test_sigterm_pauses_and_resume_finishes(tmp_path):
    bus = Bus(tmp_path)
    run = _aisci(tmp_path, "run", str(shipped_tasks()["breast-cancer"]), "--project", "spot", "--grace", "120")
    _wait_for(bus, "spot", "dispatch", "implement-1")
    run.send_signal(signal.SIGTERM)
    out, _ = run.communicate(timeout=180)
    assert run.returncode == 75, out[-3000:]
    assert "aisci resume spot" in out

    events = bus.project("spot").events().to_pylist()
    kinds = [e["kind"] for e in events]
    asked = kinds.index("pause_requested")
    assert kinds[-1] == "paused" and "SIGTERM" in events[asked]["summary"]
    # Within the grace period the work going finished, and nothing new started: runs still
    # waiting for a CPU were withdrawn (a dispatch racing the pause is withdrawn too).
    after = events[asked:]
    withdrawn = {e["run"] for e in after if e["kind"] == "run_withdrawn"}
    started = {e["run"] for e in events if e["kind"] == "experiment_start"}
    finished = {e["run"] for e in events if e["kind"] == "experiment"}
    # A decision may still be committed by a tick that read the bus just before the request
    # (the orchestrator checks again after its policy decides, which narrows it to the
    # commit's own milliseconds; the full suite at a load of 19 met it): it sends nothing.
    # The same for the subtasks of a tick that checked for a pause just before the request
    # and recorded their dispatch just after it (a load of 7 met that window once in three
    # full runs): they may go, but no later tick sends any (a later tick comes only after
    # the step's subtasks complete).
    first_complete = next((i for i, e in enumerate(after) if e["kind"] == "complete"), len(after))
    racing = {e["subtask"] for e in after[:first_complete] if e["kind"] == "dispatch" and e["subtask"]}
    assert not started & withdrawn and started <= finished, kinds[asked:]
    assert all(e["run"] in withdrawn or e["subtask"] in racing for e in after if e["kind"] == "dispatch"), \
        kinds[asked:]
    paused = State.from_events(bus.project("spot").events())
    assert paused.completed.get("implement-1") is True, paused.completed
    assert paused.in_flight <= withdrawn | racing, (paused.in_flight, withdrawn, racing)

    resumed = _aisci(tmp_path, "resume", "spot")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    assert "s of project time (" in out and "s this start)" in out, out[-1500:]  # every start's time, and this one's
    # Without --debug none of Ray's own lines is shown (stderr is in `out` here); ours is.
    assert "Ray: a new local cluster at " in out, out[-1500:]
    assert not any(said in out for said in RAY_SAYS), out[-3000:]
    assert not any(is_ray_noise(line.encode()) for line in out.splitlines()), out[-3000:]
    final = State.from_events(bus.project("spot").events())
    assert final.stopped.startswith("every phase is done; submission: submission/submission.csv is in place")
    before, everything = events, bus.project("spot").events().to_pylist()
    for sid in paused.completed:  # finished before the pause: its subtask never dispatched again...
        subtask = lambda evs: sum(1 for e in evs if e["kind"] == "dispatch" and e["subtask"] == sid)  # noqa: E731
        assert subtask(everything) == subtask(before), sid
        # ...and its run (a tree node's run shares its id), withdrawn while it waited for a
        # CPU or asked for but not yet dispatched when the pause came (at a load of 10),
        # starts once in all.
        assert sum(1 for e in everything if e["kind"] == "experiment_start" and e["run"] == sid) <= 1, sid
    grade = json.loads((bus.project("spot").dir / "report" / "grade.json").read_text())
    assert grade["valid_submission"] and grade["any_medal"], grade
    assert "resumed" in [e["kind"] for e in bus.project("spot").events().to_pylist()]

    # Resuming a project that has ended is a no-op: nothing decided, run, graded or written.
    n = bus.project("spot").events().num_rows
    again = _aisci(tmp_path, "resume", "spot")
    out, _ = again.communicate(timeout=300)
    medal = next(m for m in ("gold", "silver", "bronze") if grade[f"{m}_medal"])
    assert again.returncode == 0 and medal in out, out[-2000:]
    assert bus.project("spot").events().num_rows == n


def test_resume_of_an_unknown_project_says_what_to_do(tmp_path):
    out = _aisci(tmp_path, "resume", "nothing-here").communicate(timeout=60)[0]
    assert "no project 'nothing-here'" in out and "aisci status" in out
