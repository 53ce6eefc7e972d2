"""`aisci status` tells a running project from one whose driver is gone (cluster.lease).

Before: a project whose `aisci run` was SIGKILLed (no process left) showed "running"
forever. Now the driver holds a heartbeat in the operator's area, and status shows
`interrupted (no driver since HH:MM:SS): aisci resume P` once it is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.mlebench.task import shipped_tasks
from bus import Bus
from cluster.cli import main
from cluster.lease import HEARTBEAT_FILE, DriverLease, Heartbeat, last_heartbeat

ROOT = Path(__file__).resolve().parents[2]


def _status(root, project, capsys) -> str:
    assert main(["--root", str(root), "status", project]) == 0
    return "".join(capsys.readouterr().out.replace("│", "").split())  # the table's borders and folds out


def _running_project(bus: Bus, name: str) -> None:
    bus.create_project(name).as_role("orchestrator", f"orchestrator-{name}").record(
        "decision", "step 1", path="plan/steps/1.json", hash="0" * 64)


def test_a_held_project_runs_and_a_released_one_is_interrupted(bus, capsys):
    _running_project(bus, "held")
    assert "running" in _status(bus.root, "held", capsys)  # no heartbeat ever: not judged
    with DriverLease(bus, period_s=0.05) as lease:
        lease.hold("held")
        first = last_heartbeat(bus, "held")
        assert first.pid == os.getpid() and not first.released
        while last_heartbeat(bus, "held").time == first.time:  # the thread beats on its own
            time.sleep(0.01)
        assert "running" in _status(bus.root, "held", capsys)
    # The driver left while the events say the project runs (it raised: a fault of aisci).
    assert last_heartbeat(bus, "held").released
    shown = _status(bus.root, "held", capsys)
    assert "interrupted(nodriversince" in shown and "):aisciresumeheld" in shown, shown


def test_a_stale_heartbeat_from_another_host_is_interrupted_and_a_fresh_one_runs(bus, capsys):
    _running_project(bus, "far")
    beat = Heartbeat(host="another-host.example", pid=1, time=time.time(), period_s=5.0)
    bus.operator.write("far", HEARTBEAT_FILE, beat.model_dump_json().encode())
    assert "running" in _status(bus.root, "far", capsys)  # the pid is another machine's: not looked at
    old = beat.model_copy(update={"time": time.time() - 16})  # more than 3 periods of 5 s
    bus.operator.write("far", HEARTBEAT_FILE, old.model_dump_json().encode())
    hhmmss = time.strftime("%H:%M:%S", time.localtime(old.time))
    assert f"interrupted(nodriversince{hhmmss}):aisciresumefar" in _status(bus.root, "far", capsys)
    # Ended, paused and failed projects say so, whatever the heartbeat.
    for kind in ("failed", "paused", "stopped"):
        bus.project("far").as_role("system", "test").record(kind, f"{kind} for a reason")
        shown = _status(bus.root, "far", capsys)
        assert f"{kind}:" in shown and "interrupted" not in shown, shown
        bus.project("far").as_role("system", "test").record("resumed", "again")


def test_the_heartbeat_is_out_of_every_roles_reach(bus):
    _running_project(bus, "safe")
    with DriverLease(bus) as lease:
        lease.hold("safe")
    path = bus.operator.path("safe", HEARTBEAT_FILE)
    assert path.is_file() and bus.project("safe").dir not in path.parents
    assert oct(path.stat().st_mode & 0o777) == "0o600"


@pytest.mark.slow
def test_status_says_interrupted_after_the_driver_is_sigkilled(tmp_path, capsys):
    """A real `aisci run` in its own session, SIGKILLed with everything it started (its
    local Ray cluster too) once its project runs: no process is left to say anything."""
    bus = Bus(tmp_path / "root")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "-m", "cluster.cli", "--root", str(bus.root), "run",
                             str(shipped_tasks()["breast-cancer"]), "--project", "doomed", "--budget", "10m"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 420  # a bound, not a duration: Ray's start at a load of 20 is minutes
        while not (_dispatched(bus, "doomed") and last_heartbeat(bus, "doomed") is not None):  # it runs
            assert proc.poll() is None and time.monotonic() < deadline, "the driver never started the project"
            time.sleep(0.2)
        assert last_heartbeat(bus, "doomed").pid == proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    shown = _status(bus.root, "doomed", capsys)
    assert "interrupted(nodriversince" in shown and "):aisciresumedoomed" in shown, shown
    assert "running" not in shown


def _dispatched(bus: Bus, project: str) -> bool:
    return project in bus.projects() and any(e["kind"] == "dispatch" for e in bus.project(project).events().to_pylist())


@pytest.mark.parametrize("command", [["run", "digits", "--project", "busy", "--budget", "60s"], ["resume", "busy"]])
def test_a_second_driver_for_a_running_project_is_refused(ray_cluster, bus, capsys, command):
    """The breaker's `aisci resume` of a project `aisci run` was running started its own
    local cluster (where no orchestrator of the project lives), and both drivers ran
    runs twice. A live driver's lease is now checked: one line, exit 2, nothing written;
    a lease whose driver is gone lets the resume go on."""
    from cluster.run import make_job, prepare

    job = make_job(str(shipped_tasks()["digits"]), "busy", budget_s=60)
    prepare(bus, job)  # the project as a first start leaves it
    sleeper = subprocess.Popen(["sleep", "120"])  # a live process on this host: the other driver
    try:
        beat = Heartbeat(host=os.uname().nodename, pid=sleeper.pid, time=time.time())
        bus.operator.write("busy", HEARTBEAT_FILE, beat.model_dump_json().encode())
        before = bus.project("busy").events().num_rows
        assert main(["--root", str(bus.root), *command]) == 2
        err = capsys.readouterr().err
        assert f"already running: its driver (pid {sleeper.pid} on" in err and "aisci pause busy" in err, err
        assert bus.project("busy").events().num_rows == before
    finally:
        sleeper.kill()
        sleeper.wait()
    from cluster.run import check_not_running

    check_not_running(bus, "busy")  # its driver is gone now: a resume may take the project
