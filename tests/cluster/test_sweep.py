"""`aisci sweep`: a grid of projects sharing one cluster, resumable as a whole, and its
leaderboard from the index."""

from __future__ import annotations

import pytest
import yaml

from actors.state import State
from cluster.cli import main
from cluster.errors import UserError
from cluster.leaderboard import leaderboard, project_results
from cluster.sweep import SweepSpec, members, run_sweep

pytestmark = pytest.mark.slow  # a whole project or a cluster of its own: `pytest -m 'not slow'` skips it

SWEEP = {"name": "t", "tasks": ["breast-cancer"], "seeds": [0, 1], "budget": "10m", "max_concurrent": 2,
         "agents": 2, "settings": {"on": {}, "off": {"bus_memory": False}}}


def test_a_sweep_runs_its_grid_capped_and_resumes_as_a_whole(ray_cluster, bus, tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    spec = SweepSpec.load(path)
    outcomes = run_sweep(bus, spec)
    printed = capsys.readouterr().out
    assert "(None)" not in printed and "-> not graded: " in printed, printed  # the ablation submits nothing
    names = [m["project"] for m in members(bus, "t")]
    assert sorted(names) == ["t-breast-cancer-off-s0", "t-breast-cancer-off-s1",
                             "t-breast-cancer-on-s0", "t-breast-cancer-on-s1"]
    assert sorted(o.project for o in outcomes) == sorted(names) and not any(o.paused for o in outcomes)
    # The memory-off ablation: without bus memory the writer cannot re-read the experiments'
    # predictions (its reads of experiments/ are refused), so it submits nothing.
    off = next(o for o in outcomes if o.project == "t-breast-cancer-off-s0")
    assert not off.grade.valid_submission and off.grade.reason == "no submission file", off.grade
    refused = [e for e in bus.project(off.project).events().to_pylist() if e["kind"] == "refused"]
    assert any("experiments/" in (e["path"] or "") for e in refused), refused

    # Never more than max_concurrent projects at once (from their first to last event).
    spans = []
    for name in names:
        times = [e["time"] for e in bus.project(name).events().to_pylist() if e["kind"] in ("decision", "stopped")]
        spans.append((min(times), max(times)))
    overlap = max(sum(a <= t <= b for a, b in spans) for t, _ in spans)
    assert overlap <= 2, spans

    # The seed reaches the runs: the two seeds' forests differ.
    seeds = [State.from_events(bus.project(f"t-breast-cancer-on-s{s}").events()).runs for s in (0, 1)]
    forest = [next(r.cv_score for r in runs if r.id.startswith("forest")) for runs in seeds]
    assert forest[0] != forest[1]

    board = {(r["setting"]): r for r in leaderboard(bus, "t").to_pylist()}
    assert board["on"]["graded"] == "2/2" and board["on"]["best_medal"] in ("gold", "silver", "bronze")
    assert board["off"]["graded"] == "0/2"  # the ablation submits nothing (see test_run)
    assert board["on"]["tokens"] == sum(r["tokens"] for r in project_results(bus, "t") if r["setting"] == "on")
    assert board["on"]["gpu_hours"] == 0.0  # CPU runs

    # The same through the command line: the status table of the sweep and its leaderboard.
    assert main(["--root", str(bus.root), "status", "--sweep", "t"]) == 0
    table = capsys.readouterr().out
    assert all(n in table for n in names) and "stopped: every phase is done" in table
    assert main(["--root", str(bus.root), "leaderboard", "t"]) == 0
    printed = capsys.readouterr().out
    assert "breast-cancer" in printed and board["on"]["best_medal"] in printed and "2/2" in printed

    before = {n: bus.project(n).events().num_rows for n in names}
    assert run_sweep(bus, spec) == []  # everything ended: resuming the sweep starts nothing
    assert {n: bus.project(n).events().num_rows for n in names} == before
    # ... and says so without joining a cluster: an address where none is answers exit 0.
    capsys.readouterr()
    assert main(["--root", str(bus.root), "sweep", str(path), "--address", "127.0.0.1:1"]) == 0
    assert "all 4 projects have ended" in capsys.readouterr().out
    # The same name with another budget is refused, naming it; nothing is written.
    path.write_text(yaml.safe_dump({**SWEEP, "budget": "20m"}))
    assert main(["--root", str(bus.root), "sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert 'budget ("10m" before, "20m" now)' in err and "new name" in err, err
    assert {n: bus.project(n).events().num_rows for n in names} == before


def test_bad_sweep_files_say_what_is_wrong(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**SWEEP, "tasks": ["no-such-task"]}))
    with pytest.raises(UserError, match="no task 'no-such-task'"):
        SweepSpec.load(path).jobs()
    path.write_text(yaml.safe_dump({**SWEEP, "settings": {"x": {"bus_memroy": False}}}))
    with pytest.raises(UserError, match="bus_memroy"):
        SweepSpec.load(path)
    # The issue's examples: the same task twice aborted the sweep and every re-run; a
    # folder given as the sweep file gave a traceback. Now each is one line, before Ray.
    path.write_text(yaml.safe_dump({**SWEEP, "tasks": ["breast-cancer", "breast-cancer"]}))
    with pytest.raises(UserError, match="listed twice"):
        SweepSpec.load(path).jobs()
    path.write_text(yaml.safe_dump({**SWEEP, "seeds": [1, 2, 1]}))
    with pytest.raises(UserError, match="seed 1 listed twice"):
        SweepSpec.load(path).jobs()
    # YAML's booleans as setting names, a model the sweep cannot run: named as the file has them.
    path.write_text("name: t\ntasks: [digits]\nsettings:\n  on: {}\n  off: {bus_memory: false}\n")
    assert main(["--root", str(tmp_path / "bus"), "sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert "settings: the name true is read by YAML as a bool: quote it" in err and "[key]" not in err, err
    path.write_text(yaml.safe_dump({**SWEEP, "models": ["gpt"]}))
    assert main(["--root", str(tmp_path / "bus"), "sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert "sweep t: models: 'gpt': use baseline" in err and "--model" not in err, err
    for bad in (str(tmp_path), str(tmp_path / "missing.yaml")):
        assert main(["--root", str(tmp_path / "bus"), "sweep", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("aisci: sweep file ") and "cannot read it" in err and "Traceback" not in err, err
    # Not UTF-8, a YAML fault (with its line), not a mapping: one line each (a traceback, an
    # internal class name, no line number were what the breaker saw).
    for content, says in ((b"\xff\xfe bad", "not UTF-8 text (byte 0): save it as UTF-8"),
                          (b"name: x\ntasks: [a, b\n", "not valid YAML at line 3, column 1"),
                          (b"- a\n", "a YAML mapping of name, tasks"), (b"", "a YAML mapping of name, tasks")):
        path.write_bytes(content)
        assert main(["--root", str(tmp_path / "bus"), "sweep", str(path)]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1 and "SweepSpec" not in err, err


def test_a_sweep_paused_with_members_waiting_ends_as_paused_leaving_them_unstarted(tmp_path):
    """SIGTERM while one member runs and two wait (max_concurrent 1): the sweep looped
    forever on "1 waiting" (the breaker: 12 minutes, SIGKILL to end it). Now it exits 75
    within its grace; the waiting ones are not started (the same command starts them)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from bus import Bus

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "w", "tasks": ["breast-cancer"], "seeds": [0, 1, 2], "budget": "60s",
                                    "max_concurrent": 1, "agents": 1}))
    root = tmp_path / "root"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    repo = Path(__file__).resolve().parents[2]
    sweep = subprocess.Popen([sys.executable, "-m", "cluster.cli", "--root", str(root), "sweep", str(path),
                              "--grace", "5"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + 180
    while not (root.exists() and "w-breast-cancer-default-s0" in Bus(root).projects()):
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()
        time.sleep(0.2)
    sweep.send_signal(signal.SIGTERM)
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 75, (sweep.returncode, out[-2000:], err[-2000:])
    assert "waiting w-breast-cancer-default-s2: not started" in out, out[-2000:]
    assert "w-breast-cancer-default-s2" not in Bus(root).projects()
