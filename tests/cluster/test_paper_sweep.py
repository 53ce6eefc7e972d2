"""Papers in a sweep (`papers:` and `paper:` in the sweep file): each a project run as
`aisci paper` runs it, its end (reproduction, grade) a Ray task with the GPUs asked for;
and the end of a paper project redone when a driver was stopped in the middle of it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
import yaml

from benchmarks.paperbench import Paper, shipped_papers
from bus import Bus
from cluster.cli import main
from cluster.errors import UserError
from cluster.leaderboard import leaderboard
from cluster.paper_end import PaperOutcome, check_end_placement, end_as_task, finish_paper, paper_ended
from cluster.paper_run import import_paper, make_paper_job
from cluster.paper_settings import PaperSettings
from cluster.sweep import SweepSpec, members, run_sweep

SHIPPED = shipped_papers()["scaling-knn-vs-forest"]
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
REPO = Path(__file__).resolve().parents[2]
PAPERS = {"name": "ps", "papers": ["scaling-knn-vs-forest"], "paper": {"judge": "scripted", "reproduce_gpus": 1},
          "settings": {"on": {}, "off": {"bus_memory": False}}, "budget": "15m", "max_concurrent": 2, "agents": 2}


def _load(tmp_path: Path, data: dict) -> SweepSpec:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return SweepSpec.load(path)


def test_bad_paper_sweeps_are_one_line_before_ray_starts(tmp_path):
    with pytest.raises(UserError, match="give tasks, papers, or both"):
        _load(tmp_path, {"name": "ps"})
    with pytest.raises(UserError, match="no paper 'no-such-paper'"):
        _load(tmp_path, {**PAPERS, "papers": ["no-such-paper"]}).jobs()
    with pytest.raises(UserError, match="task '.*scaling-knn-vs-forest' listed twice"):
        _load(tmp_path, {**PAPERS, "papers": ["scaling-knn-vs-forest", str(SHIPPED)]}).jobs()
    with pytest.raises(UserError, match=r"sweep ps: paper: judge 'gpt'"):
        _load(tmp_path, {**PAPERS, "paper": {"judge": "gpt"}}).jobs()
    with pytest.raises(UserError, match=r"paper\.reproduce_gpus"):
        _load(tmp_path, {**PAPERS, "paper": {"reproduce_gpus": -1}})
    with pytest.raises(UserError, match=r"paper\.judje"):
        _load(tmp_path, {**PAPERS, "paper": {"judje": "scripted"}})
    with pytest.raises(UserError, match="reproduce_timeout"):
        _load(tmp_path, {**PAPERS, "paper": {"reproduce_timeout": "soon"}}).jobs()
    # Tasks and papers in one grid: each its own track, the papers with the sweep's paper settings.
    grid = _load(tmp_path, {**PAPERS, "tasks": ["digits"]}).jobs()
    assert sorted((c["task"], c["track"]) for _, c in grid) == [("digits", "mlebench")] * 2 + [
        ("scaling-knn-vs-forest", "paper")] * 2
    paper_jobs = [j for j, c in grid if c["track"] == "paper"]
    assert all(j.hidden == (str(SHIPPED),) and j.orchestrator.track == "paper" for j in paper_jobs)  # rubric hidden


def test_an_end_asking_for_more_gpus_than_a_node_has_is_refused(ray_cluster):
    with pytest.raises(UserError, match="asks for 3 GPU and no node of this cluster has that"):
        check_end_placement(PaperSettings(paper=str(SHIPPED), reproduce_gpus=3))
    check_end_placement(PaperSettings(paper=str(SHIPPED), reproduce_gpus=1))  # the test cluster's 2 fake GPUs


@needs_bwrap
def test_the_reproduction_sees_the_gpus_ray_gave_its_end(ray_cluster, bus):
    paper = Paper(SHIPPED)
    for name, gpus in (("here", 0.0), ("gpu", 1.0)):
        job = make_paper_job(paper, name)
        proj = import_paper(bus, paper, name)
        writer = proj.as_role("writer", "w")
        writer.write("submission/reproduce.sh", 'echo "devices=${CUDA_VISIBLE_DEVICES:-none}"\n')
        writer.write("submission/README.md", "prints the GPUs it is given\n")
        settings = PaperSettings(paper=str(paper.root), reproduce_gpus=gpus)
        out = PaperOutcome(project=name, kind="ended", reason="done")
        if gpus:
            out, lines = ray.get(end_as_task(bus, job, settings, out), timeout=300)
            assert any("no judge model configured" in line for line in lines), lines  # said, not printed
        else:
            finish_paper(bus, job, settings, out, say=lambda *a, **k: None)
        log = proj.as_role("viewer").read("report/reproduce.log")
        assert out.reproduction and out.reproduction.exit_code == 0, out
        assert ("devices=none" in log) if not gpus else (log.strip() in ("devices=0", "devices=1")), log
        assert any(e["kind"] == "paper_ended" for e in proj.events().to_pylist())


@pytest.mark.slow
@needs_bwrap
def test_a_sweep_of_a_paper_runs_each_setting_to_a_grade(ray_cluster, bus, tmp_path, capsys):
    """The shipped paper, bus memory on and off, the scripted model and judge: each member
    reproduced by its end's Ray task (one fake GPU each) and graded; the leaderboard shows
    the scores; the same sweep again starts nothing."""
    spec = _load(tmp_path, PAPERS)
    t0 = time.monotonic()
    outcomes = run_sweep(bus, spec)
    wall = time.monotonic() - t0
    said = capsys.readouterr().out
    names = sorted(m["project"] for m in members(bus, "ps"))
    assert names == ["ps-scaling-knn-vs-forest-off-s0", "ps-scaling-knn-vs-forest-on-s0"]
    assert sorted(o.project for o in outcomes) == names and all(o.kind == "ended" for o in outcomes), said
    scores = {}
    for name in names:
        viewer = bus.project(name).as_role("viewer")
        grade = json.loads(viewer.read("report/paperbench.json"))
        assert grade["num_leaf_nodes"] == 23 and grade["num_invalid_leaf_nodes"] == 0
        assert json.loads(viewer.read("report/reproduction.json"))["exit_code"] == 0
        assert paper_ended(bus, name)
        scores[name.split("-")[-2]] = grade["score"]
        assert f"{name}: PaperBench score {grade['score']:.3f}, reproduce.sh exited 0" in said, said
    print(f"paper sweep: memory on {scores['on']:.3f}, off {scores['off']:.3f}, {wall:.0f} s")
    board = {r["setting"]: r for r in leaderboard(bus, "ps").to_pylist()}
    assert board["on"]["best_paper_score"] == scores["on"] and board["off"]["best_paper_score"] == scores["off"]
    assert main(["--root", str(bus.root), "leaderboard", "ps"]) == 0
    assert "scaling-knn-vs-forest" in capsys.readouterr().out
    before = {n: bus.project(n).events().num_rows for n in names}
    assert run_sweep(bus, spec) == []
    assert {n: bus.project(n).events().num_rows for n in names} == before


def _aisci(root: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.Popen([sys.executable, "-m", "cluster.cli", "--root", str(root), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _term_once_stopped(run: subprocess.Popen, bus: Bus, project: str) -> str:
    """SIGTERM ``run`` once the project's orchestrator has stopped (its end under way);
    returns what it printed."""
    deadline = time.monotonic() + 420
    while not (project in bus.projects() and any(e["kind"] == "stopped"
                                                  for e in bus.project(project).events().to_pylist())):
        assert time.monotonic() < deadline and run.poll() is None, "the paper project never stopped"
        time.sleep(0.2)
    run.send_signal(signal.SIGTERM)
    out, _ = run.communicate(timeout=240)
    return out


@pytest.mark.slow
@needs_bwrap
def test_a_driver_stopped_during_the_end_leaves_it_to_the_next(tmp_path):
    """SIGTERM while `aisci paper` reproduces: a pause (exit 75), nothing graded, no
    `paper_ended`. Before, the project counted as ended: the same command said "ended
    already (not graded)" and the reproduction and grade were lost. Now `aisci resume`
    does the end again; the same for a sweep, whose end in flight is cut at its grace."""
    bus = Bus(tmp_path)
    run = _aisci(tmp_path, "paper", "scaling-knn-vs-forest", "--project", "cut", "--judge", "scripted")
    out = _term_once_stopped(run, bus, "cut")
    assert run.returncode == 75 and "during its end" in out and "aisci resume cut" in out, out[-3000:]
    assert not paper_ended(bus, "cut")
    resume = _aisci(tmp_path, "resume", "cut")
    out, _ = resume.communicate(timeout=600)
    assert resume.returncode == 0 and "PaperBench score" in out, out[-3000:]
    assert paper_ended(bus, "cut") and bus.project("cut").as_role("viewer").exists("report/paperbench.json")

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**PAPERS, "name": "pc", "settings": {"on": {}}}))
    project = "pc-scaling-knn-vs-forest-on-s0"
    run = _aisci(tmp_path, "sweep", str(path), "--grace", "1")
    out = _term_once_stopped(run, bus, project)
    assert run.returncode == 75 and "was cut; the same command does it again" in out, out[-3000:]
    assert not paper_ended(bus, project)
    again = _aisci(tmp_path, "sweep", str(path))
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0 and f"{project}: PaperBench score" in out, out[-3000:]
    assert paper_ended(bus, project)
