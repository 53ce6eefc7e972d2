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
from cluster.cli_projects import status_table
from cluster.errors import UserError
from cluster.job import save_job
from cluster.leaderboard import leaderboard
from cluster.paper_end import (
    PaperOutcome,
    check_end_placement,
    end_as_task,
    finish_paper,
    paper_ended,
)
from cluster.paper_run import import_paper, make_paper_job
from cluster.paper_settings import PaperSettings
from cluster.sweep import SweepSpec, members

SHIPPED = shipped_papers()["scaling-knn-vs-forest"]
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
REPO = Path(__file__).resolve().parents[2]
PAPERS = {"name": "ps", "papers": ["scaling-knn-vs-forest"], "paper": {"judge": "scripted", "reproduce_gpus": 1},
          "settings": {"on": {}, "off": {"bus_memory": False}}, "budget": "15m", "max_concurrent": 2, "agents": 2}


def _load(tmp_path: Path, data: dict) -> SweepSpec:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return SweepSpec.load(path)


def test_bad_paper_sweeps_are_one_line_before_ray_starts(tmp_path, monkeypatch):
    for name in ("AISCI_JUDGE_BASE_URL", "AISCI_LLM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UserError, match="give tasks, papers, or both"):
        _load(tmp_path, {"name": "ps"})
    with pytest.raises(UserError, match="no paper 'no-such-paper'"):
        _load(tmp_path, {**PAPERS, "papers": ["no-such-paper"]}).jobs()
    with pytest.raises(UserError, match="task '.*scaling-knn-vs-forest' listed twice"):
        _load(tmp_path, {**PAPERS, "papers": ["scaling-knn-vs-forest", str(SHIPPED)]}).jobs()
    with pytest.raises(UserError, match=r"sweep ps: paper: judge 'gpt'"):
        _load(tmp_path, {**PAPERS, "paper": {"judge": "gpt"}}).jobs()
    with pytest.raises(UserError) as e:  # named as the file has them, never as aisci paper's flags
        _load(tmp_path, {**PAPERS, "paper": {"judge": "openai:J"}}).jobs()
    assert "judge openai:J needs the endpoint: judge_base_url" in str(e.value) and "--" not in str(e.value), e.value
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
    with pytest.raises(UserError, match="asks for 3 GPUs and no node of this cluster has that"):
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


def _aisci(root: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.Popen([sys.executable, "-m", "cluster.cli", "--root", str(root), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _term_in_the_end(run: subprocess.Popen, bus: Bus, project: str) -> str:
    """SIGTERM ``run`` once the project's end is under way (its orchestrator stopped, the
    final reproduction's scratch folder made: it runs 15-20 s); returns what it printed."""
    deadline = time.monotonic() + 420
    while not (project in bus.projects() and (bus.root / "scratch" / project / "reproduce").is_dir() and any(
            e["kind"] == "stopped" for e in bus.project(project).events().to_pylist())):
        assert time.monotonic() < deadline and run.poll() is None, "the paper project's end never started"
        time.sleep(0.2)
    run.send_signal(signal.SIGTERM)
    out, _ = run.communicate(timeout=240)
    return out


def test_a_blacklist_hit_shows_in_status_as_disqualified(bus, tmp_path):
    """The monitor's hit was in the report and the driver's line, but `aisci status` said
    only "(paper)" (the breaker): PaperBench disqualifies such a submission."""
    folder = tmp_path / "bl"
    shutil.copytree(SHIPPED, folder)
    (folder / "blacklist.txt").write_text("https://github.com/secret/repo\n")
    paper = Paper(folder)
    job = make_paper_job(paper, "bl")
    proj = import_paper(bus, paper, "bl")
    save_job(bus, job)
    proj.as_role("system", "llm").write("logs/llm/writer-1/00000001.json", json.dumps(
        {"reply": {"text": "I will copy github.com/secret/repo"}}))
    writer = proj.as_role("writer", "w")
    writer.write("submission/reproduce.sh", "echo hi\n")
    writer.write("submission/README.md", "cites github.com/Secret/Repo.git\n")
    out = PaperOutcome(project="bl", kind="ended", reason="done")
    finish_paper(bus, job, PaperSettings(paper=str(folder), code_dev=True), out, say=lambda *a, **k: None)
    assert out.blacklist_hits == ["logs/llm/writer-1/00000001.json: https://github.com/secret/repo"], out
    row = status_table(bus, ["bl"]).to_pylist()[0]
    assert row["medal"].endswith("disqualified (blacklist)"), row


@pytest.mark.slow
@needs_bwrap
def test_a_paper_sweep_paused_in_an_end_does_it_again_then_ranks_it(tmp_path):
    """`aisci sweep` of the shipped paper (scripted model and judge): SIGTERM while its end
    reproduces cuts that end at the grace period (exit 75, no `paper_ended`); the same
    command ends it (reproduction, grade: one line), the leaderboard shows its score, and
    the command once more starts nothing."""
    bus = Bus(tmp_path)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**PAPERS, "name": "pc", "settings": {"on": {}}, "paper": {"judge": "scripted"}}))
    project = "pc-scaling-knn-vs-forest-on-s0"
    run = _aisci(tmp_path, "sweep", str(path), "--grace", "1")
    out = _term_in_the_end(run, bus, project)
    assert run.returncode == 75 and "was cut; the same command does it again" in out, out[-3000:]
    assert not paper_ended(bus, project) and not bus.project(project).as_role("viewer").exists(
        "report/paperbench.json")
    again = _aisci(tmp_path, "sweep", str(path))
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-3000:]
    grade = json.loads(bus.project(project).as_role("viewer").read("report/paperbench.json"))
    assert grade["num_leaf_nodes"] == 23 and paper_ended(bus, project)
    assert f"{project}: PaperBench score {grade['score']:.3f}, reproduce.sh exited 0" in out, out[-3000:]
    assert [m["track"] for m in members(bus, "pc")] == ["paper"]
    board = leaderboard(bus, "pc").to_pylist()[0]
    assert board["best_paper_score"] == grade["score"] and board["graded"] == "1/1", board
    before = bus.project(project).events().num_rows
    last = _aisci(tmp_path, "sweep", str(path))
    out, _ = last.communicate(timeout=120)
    assert last.returncode == 0 and "all 1 projects have ended" in out, out[-3000:]
    assert bus.project(project).events().num_rows == before
