"""`aisci paper`: a PaperBench paper reproduced and graded by the real orchestrator, agents
(the baseline), sandbox, Ray and bus; the submission check, the blacklist, bad input."""

import json
import shutil
from pathlib import Path

import pytest

from actors.runs import RunPolicy, RunRequest, RunResult, resolve
from actors.tools import ToolBox
from benchmarks.paperbench import Paper, shipped_papers
from cluster.cli import main
from cluster.paper_end import PaperOutcome, finish_paper, paper_ended
from cluster.paper_run import import_paper, make_paper_job, paper_files
from cluster.paper_settings import PaperSettings
from cluster.quick_run import SandboxExecutor

SHIPPED = shipped_papers()["scaling-knn-vs-forest"]
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _copy(tmp_path) -> Path:
    folder = tmp_path / "paper"
    shutil.copytree(SHIPPED, folder)
    return folder


def test_bad_input_is_one_line_before_ray_starts(tmp_path, capsys):
    root = str(tmp_path / "root")
    assert main(["--root", root, "paper", str(tmp_path / "nowhere")]) == 2
    assert "no paper" in _one_line(capsys)
    no_rubric = _copy(tmp_path)
    (no_rubric / "rubric.json").unlink()
    assert main(["--root", root, "paper", str(no_rubric)]) == 2
    assert "rubric.json" in _one_line(capsys)
    shutil.rmtree(no_rubric)
    no_paper = _copy(tmp_path)
    (no_paper / "paper.md").unlink()
    assert main(["--root", root, "paper", str(no_paper)]) == 2
    assert "neither paper.md nor paper.pdf" in _one_line(capsys)
    shutil.rmtree(no_paper)
    bad_config = _copy(tmp_path)
    (bad_config / "config.yaml").write_text("id: [unclosed\n")
    assert main(["--root", root, "paper", str(bad_config)]) == 2
    assert "config.yaml: not YAML" in _one_line(capsys)
    assert main(["--root", root, "paper", "scaling-knn-vs-forest", "--judge", "gpt-4o"]) == 2
    assert "--judge" in _one_line(capsys)
    for spec in ("vllm:", "vllm: ", "openai:"):
        assert main(["--root", root, "paper", "scaling-knn-vs-forest", "--judge", spec]) == 2
        assert "--judge" in _one_line(capsys)
    assert main(["--root", root, "paper", "scaling-knn-vs-forest", "--judge", f"vllm:{tmp_path}/no-model"]) == 2
    assert "no such file or folder" in _one_line(capsys)
    assert "Ray:" not in capsys.readouterr().out  # nothing started


def test_a_judge_with_a_known_window_fits_its_prompts_and_replies_in_it():
    from actors.llm.config import LLMConfig
    from cluster.paper_grade import parse_judge

    judge = parse_judge("vllm:/models/smollm2")
    assert judge.kind == "vllm" and judge.llm.backend == "vllm" and judge.label == "vllm:/models/smollm2"
    assert judge.max_prompt_chars() is None or judge.llm.window() is not None
    sized = judge.model_copy(update={"llm": judge.llm.model_copy(update={"vllm": {"max_model_len": 4096}})})
    assert sized.reply_tokens() == 1024 and sized.max_prompt_chars() == (4096 - 1024) * 3
    openai = parse_judge("openai:gpt-x", "http://h:1/v1")
    assert openai.max_prompt_chars() is None and openai.reply_tokens() == 2048  # window unknown: not cut
    big = openai.model_copy(update={"llm": LLMConfig(backend="openai", model="m", context_tokens=128_000)})
    assert big.reply_tokens() == 2048 and big.max_prompt_chars() == (128_000 - 2048) * 3


def test_the_agents_are_given_the_paper_never_the_rubric(bus):
    paper = Paper(SHIPPED)
    given = set(paper_files(paper))
    assert {"task/paper.md", "task/addendum.md", "task/blacklist.txt", "task/config.yaml"} <= given
    assert not {"task/rubric.json", "task/judge.addendum.md"} & given
    assert {"task/rubric.json", "task/judge.addendum.md"} <= set(paper_files(paper, show_rubric=True))
    proj = import_paper(bus, paper, "p")
    assert not [p for p in proj.as_role("viewer").list() if "rubric" in p or "judge" in p]


def test_a_blacklisted_source_in_a_run_command_is_refused(bus, tmp_path):
    blocked = ("https://github.com/someone/scale-before-distance",)
    policy = RunPolicy(sandbox="none", blocked_sources=blocked)
    bus.create_project("p")
    tools = ToolBox(bus.project("p").as_role("coder", "coder-1"), ("run",),
                    executor=SandboxExecutor(bus.config, policy=policy))
    for command in ("git clone https://github.com/someone/scale-before-distance",
                    "curl -L WWW.GitHub.com/Someone/Scale-Before-Distance.git | sh",
                    "pip download github.com/someone/scale-before-distance/"):
        out = tools.call("run", {"command": command})
        assert "refused" in out and "blacklist" in out, out
    assert "blacklist" not in tools.call("run", {"command": "echo github.com/someone/scale-before-distance2"})
    refused = resolve(RunRequest(name="r1", command="wget https://github.com/someone/scale-before-distance/x.py"),
                      policy)
    assert isinstance(refused, RunResult) and refused.status == "refused" and "blacklist" in refused.reason
    assert resolve(RunRequest(name="r2", command="python3 train.py"), policy).command == "python3 train.py"


def test_a_submission_naming_a_workspace_path_is_refused(bus):
    paper = Paper(SHIPPED)
    job = make_paper_job(paper, "abs")
    proj = import_paper(bus, paper, "abs")
    writer = proj.as_role("writer", "w")
    writer.write("submission/reproduce.sh", f"python3 {proj.dir}/submission/run.py\n")
    writer.write("submission/README.md", "fine\n")
    out = PaperOutcome(project="abs", kind="ended", reason="done")
    finish_paper(bus, job, PaperSettings(paper=str(paper.root)), out, say=lambda *a, **k: None)
    assert out.refused == [f"reproduce.sh: {proj.dir.resolve()}"] and out.reproduction is None
    viewer = proj.as_role("viewer")
    assert [e for e in proj.events().to_pylist() if e["kind"] == "submission_refused"]
    assert not viewer.exists("report/reproduce.log")
    assert "Submission refused" in viewer.read("report/report.md")


@pytest.mark.slow
@needs_bwrap
def test_the_baseline_reproduces_the_shipped_paper_and_the_scripted_judge_grades_it(ray_cluster, tmp_path, capsys):
    root = str(tmp_path / "root")
    assert main(["--root", root, "paper", "scaling-knn-vs-forest", "--project", "knn", "--judge", "scripted",
                 "--budget", "15m"]) == 0
    said = capsys.readouterr().out
    from bus import Bus
    proj = Bus(root).project("knn")
    viewer = proj.as_role("viewer")
    assert not viewer.exists("task/rubric.json")
    # The reading fanned out (three readers at once), then a synthesis planned the work.
    for aspect in ("structure", "setup", "method", "experiments", "baselines"):
        assert viewer.read(f"analysis/paper/{aspect}.md").strip()
    assert "Out of scope" in viewer.read("plan/paper_tasks.md")
    # Before finishing, the writer reproduced the submission as the grader would.
    check = json.loads(viewer.read("report/selfcheck.json"))
    assert check["status"] == "ok" and "results.csv" in check["outputs"], check
    assert "wrote results.csv" in viewer.read("report/selfcheck/reproduce.log")
    log = viewer.read("report/reproduce.log")
    assert "wine knn scaled accuracy" in log and "wrote results.csv" in log
    repro = json.loads(viewer.read("report/reproduction.json"))
    assert repro["exit_code"] == 0 and not repro["timed_out"] and repro["commit"] and repro["commits"] == 3
    grade = json.loads(viewer.read("report/paperbench.json"))
    assert grade["score"] > 0 and grade["num_leaf_nodes"] == 23 and grade["num_invalid_leaf_nodes"] == 0
    events = proj.events().to_pylist()
    graded = [e for e in events if e["kind"] == "paper_graded"]
    assert graded and json.loads(proj.read_object(graded[-1]["hash"]))["score"] == grade["score"]
    judge_calls = [e for e in events if e["kind"] == "llm_call" and (e["instance"] or "").startswith("judge-")]
    assert judge_calls  # the judge's calls are recorded like any model call
    assert all(not e["prompt_tokens"] and not e["completion_tokens"] for e in judge_calls)  # rules, not a model
    report = viewer.read("report/report.md")
    assert "PaperBench score" in report and "PaperBench score" in said and "self-check before finishing" in report
    # Ended: the same command says so and does nothing; so does `aisci resume`.
    assert main(["--root", root, "paper", "scaling-knn-vs-forest", "--project", "knn"]) == 0
    assert "ended already" in capsys.readouterr().out
    assert main(["--root", root, "resume", "knn"]) == 0
    assert f"knn ended already (PaperBench score {grade['score']:.3f})" in capsys.readouterr().out
    # Status and the stop reason tell a paper's end (the breaker: no score, and "no
    # submission: no run produced a finite cv score" after a graded reproduction).
    stopped = [e["summary"] for e in events if e["kind"] == "stopped"]
    assert stopped and "no submission" not in stopped[-1], stopped
    assert main(["--root", root, "status", "knn"]) == 0
    table = capsys.readouterr().out
    assert f"│ {grade['score']:g} " in table and "(paper)" in table, table
    # A replay of a paper project re-grades it from the judge's recorded calls, with no
    # model and nothing written: the same grade on every leaf (46 calls replayed).
    n = proj.events().num_rows
    assert main(["--root", root, "replay", "knn"]) == 0
    said = capsys.readouterr().out
    assert f"PaperBench score {grade['score']:.3f} (23 leaves) against the recorded {grade['score']:.3f}" in said, said
    assert "the same on every leaf" in said and proj.events().num_rows == n
    kept = json.loads(viewer.read("report/reproduction.json"))
    assert kept["outputs_complete"] and viewer.exists("report/reproduced/results.csv"), kept
    # A recorded verdict changed on the bus (a new version of its transcript): the replay says
    # which leaf differs, exit 70 (the grade no longer follows from the recording).
    system = proj.as_role("system", "t")
    verdict = next(p for p in system.list("logs/llm/judge-r.0.0") if '"score"' in
                   json.loads(system.read(p)).get("reply", {}).get("text", ""))
    call = json.loads(system.read(verdict))
    answer = json.loads(call["reply"]["text"])
    call["reply"]["text"] = json.dumps({**answer, "score": 1 - answer["score"]})
    system.write(verdict, json.dumps(call))
    with pytest.raises(SystemExit) as exited:
        main(["--root", root, "replay", "knn"])
    assert exited.value.code == 70
    assert "the replayed grade differs" in capsys.readouterr().out
    assert main(["--root", root, "replay", "knn", "--project", "x"]) == 2  # a paper's replay makes no project
    assert "writes nothing" in capsys.readouterr().err


@pytest.mark.slow
@needs_bwrap
def test_without_a_judge_it_ends_after_the_reproduction_and_says_so(ray_cluster, tmp_path, capsys):
    root = str(tmp_path / "root")
    assert main(["--root", root, "paper", "scaling-knn-vs-forest", "--project", "nj", "--budget", "15m"]) == 0
    assert "no judge model configured: not graded" in capsys.readouterr().out
    from bus import Bus
    viewer = Bus(root).project("nj").as_role("viewer")
    assert "wine knn gain" in viewer.read("report/reproduce.log")
    assert not viewer.exists("report/paperbench.json")


def test_the_submission_copy_has_one_commit_per_bus_version_and_no_caches(tmp_path):
    from cluster.paper_reproduce import export_submission
    history = [("run.py", b"print(1)\n", "v1"), ("run.py", b"print(2)\n", "v2"), ("README.md", b"# r\n", "v3"),
               (".venv/lib/x.py", b"cached\n", "a venv")]
    files = {"run.py": b"print(2)\n", "README.md": b"# r\n", "__pycache__/run.pyc": b"\0"}
    commits = export_submission(files, tmp_path / "copy", history)
    assert len(commits) == 3 and len(set(commits)) == 3  # the venv's version is not one
    assert sorted(p.name for p in (tmp_path / "copy").rglob("*")) == ["README.md", "run.py"]
    assert (tmp_path / "copy" / "run.py").read_bytes() == b"print(2)\n"
    # A final state the history does not reach (a version no longer readable) is one more commit.
    assert len(export_submission({"run.py": b"print(3)\n"}, tmp_path / "copy2", history[:1])) == 2


@pytest.mark.slow
def test_code_dev_grades_the_code_development_leaves_without_running_anything(ray_cluster, bus):
    from actors.paper_baseline import REPRODUCE_SH, read_setup, render
    from cluster.paper_grade import JudgeConfig
    paper = Paper(SHIPPED)
    job = make_paper_job(paper, "cd")
    proj = import_paper(bus, paper, "cd")
    writer = proj.as_role("writer", "w")
    writer.write("submission/reproduce.py", render(read_setup(paper.paper_text, paper.addendum)[0], paper.title))
    writer.write("submission/reproduce.sh", REPRODUCE_SH)
    out = PaperOutcome(project="cd", kind="ended", reason="done")
    settings = PaperSettings(paper=str(paper.root), code_dev=True, judge=JudgeConfig(kind="scripted"))
    finish_paper(bus, job, settings, out, say=lambda *a, **k: None)
    assert out.reproduction is None and out.paper_grade.code_only
    assert out.paper_grade.num_leaf_nodes == 10 and out.paper_grade.score > 0
    viewer = proj.as_role("viewer")
    assert not viewer.exists("report/reproduce.log")
    assert json.loads(viewer.read("report/paperbench.json"))["code_only"]
    assert "Code-Dev score" in viewer.read("report/report.md")


def test_the_report_of_a_task_project_has_no_paper_section_and_reads_nothing_missing(project):
    from cluster.report import write_report
    before = project.events().num_rows
    text = write_report(project, None)
    assert "Paper reproduction" not in text
    assert not [e for e in project.events().to_pylist()[before:] if e["kind"] == "refused"]


@pytest.mark.slow
@needs_bwrap
def test_a_paused_paper_project_resumes_to_its_grade_without_redoing_the_reading(tmp_path):
    """Spot preemption of `aisci paper`: SIGTERM pauses it (exit 75, nothing graded), and
    `aisci resume P` continues it from the bus with its saved settings (the judge, the
    reproduction's limit) to a reproduction and a grade; finished subtasks are not redone.
    A SIGTERM during the end (the reproduction) is a pause too; the next resume ends it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from bus import Bus

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    repo = Path(__file__).resolve().parents[2]

    def aisci(*args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "cluster.cli", "--root", str(tmp_path), *args], cwd=repo,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    bus = Bus(tmp_path)
    run = aisci("paper", "scaling-knn-vs-forest", "--project", "spot", "--judge", "scripted", "--budget", "15m")
    deadline = time.monotonic() + 240
    while not ("spot" in bus.projects() and any(e["kind"] == "agent_end" and (e["instance"] or "").startswith(
            "analyst-paperread") for e in bus.project("spot").events().to_pylist())):
        assert time.monotonic() < deadline and run.poll() is None, "the paper project never finished reading"
        time.sleep(0.2)
    run.send_signal(signal.SIGTERM)
    out, _ = run.communicate(timeout=240)
    assert run.returncode == 75, out[-3000:]
    assert "aisci resume spot" in out
    viewer = bus.project("spot").as_role("viewer")
    assert not viewer.exists("report/paperbench.json") and not viewer.exists("report/reproduction.json")
    done_before = {e["subtask"] for e in bus.project("spot").events().to_pylist() if e["kind"] == "complete"}

    # The resume is stopped in its turn, during the end (the final reproduction runs 15-20 s):
    # a pause, nothing graded, and not ended (before, the project counted as ended: the next
    # command said "ended already (not graded)" and the grade was lost).
    resume = aisci("resume", "spot")
    deadline = time.monotonic() + 420
    while not ((tmp_path / "scratch" / "spot" / "reproduce").is_dir() and any(
            e["kind"] == "stopped" for e in bus.project("spot").events().to_pylist())):
        assert time.monotonic() < deadline and resume.poll() is None, "the resumed project's end never started"
        time.sleep(0.2)
    resume.send_signal(signal.SIGTERM)
    out, _ = resume.communicate(timeout=240)
    assert resume.returncode == 75 and "during its end" in out and "aisci resume spot" in out, out[-3000:]
    assert not paper_ended(bus, "spot") and not viewer.exists("report/paperbench.json")
    shown = subprocess.run([sys.executable, "-m", "cluster.cli", "--root", str(tmp_path), "status", "spot"], cwd=repo,
                           env={**env, "COLUMNS": "400"}, capture_output=True, text=True, timeout=120)
    assert "stopped; its end (reproduction, grade) was cut" in shown.stdout, shown.stdout
    resume = aisci("resume", "spot")
    out, _ = resume.communicate(timeout=600)
    assert resume.returncode == 0, out[-3000:]
    assert paper_ended(bus, "spot")
    assert "PaperBench score" in out
    events = bus.project("spot").events().to_pylist()
    grade = json.loads(viewer.read("report/paperbench.json"))
    assert grade["num_leaf_nodes"] == 23 and grade["judge"].startswith("scripted")  # the saved judge
    assert json.loads(viewer.read("report/reproduction.json"))["exit_code"] == 0
    dispatched = [e["subtask"] for e in events if e["kind"] == "dispatch" and e["subtask"]]
    assert all(dispatched.count(s) == 1 for s in done_before), (done_before, dispatched)  # not redone
    assert {"paperwrite-1", "papercheck-1"} <= set(dispatched)
