"""The agents' self-check of a paper project (`check_reproduction`): the grader's
reproduction, from inside a subtask, through the real tool, bus and executor."""

import json
import shutil

import pytest

from actors.runs import RunPolicy
from actors.self_check import CHECK_JSON, CHECK_LOG
from actors.tools import ToolBox
from benchmarks.paperbench import Paper, shipped_papers
from cluster.paper_run import import_paper
from cluster.paper_settings import SETTINGS_FILE, PaperSettings
from cluster.quick_run import SandboxExecutor

SHIPPED = shipped_papers()["scaling-knn-vs-forest"]
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def _paper_project(bus, name="p", **settings):
    paper = Paper(SHIPPED)
    proj = import_paper(bus, paper, name)
    bus.operator.write(name, SETTINGS_FILE, PaperSettings(paper=str(paper.root), **settings)
                       .model_dump_json().encode())
    return proj


def _writer(bus, proj, sandbox="none", hidden=()):
    executor = SandboxExecutor(bus.config, policy=RunPolicy(sandbox=sandbox), hidden=hidden)
    return ToolBox(proj.as_role("writer", "writer-papercheck-1"), ("write_file", "check_reproduction", "finish"),
                   executor=executor)


def test_a_working_submission_is_reproduced_fresh_and_the_outcome_is_on_the_bus(bus):
    proj = _paper_project(bus)
    tools = _writer(bus, proj)
    tools.call("write_file", {"path": "submission/reproduce.sh", "summary": "runs it", "content":
                              "set -e\necho start\nls -a\npython3 -c \"open('results.csv','w').write('acc,0.91\\n')\"\n"
                              "mkdir -p out && echo 0.5 > out/gain.txt\necho done\n"})
    tools.call("write_file", {"path": "submission/README.md", "summary": "doc", "content": "what it does\n"})
    # What a run of the agent's own would leave beside the code: never in the grader's copy.
    system = proj.as_role("system", "t")
    system.write("submission/venv/bin/activate", "# a venv\n")
    system.write("submission/__pycache__/x.pyc", b"\x00\x01")
    out = tools.call("check_reproduction", {})
    assert out.startswith("reproduce.sh exited 0 in"), out
    assert "results.csv (9 bytes)" in out and "out/gain.txt (4 bytes)" in out and "acc,0.91" in out, out
    assert "README.md" not in out.split("--- files it wrote ---")[1].split("---")[0]  # given, not written
    assert "start" in out and "done" in out
    listing = out.split("--- reproduce.log")[1]
    assert "venv" not in listing and "__pycache__" not in listing, listing  # git clean's copy
    viewer = proj.as_role("viewer")
    record = json.loads(viewer.read(CHECK_JSON))
    assert record["status"] == "ok" and record["exit_code"] == 0 and record["outputs"] == \
        {"out/gain.txt": 4, "results.csv": 9} and record["timeout_s"] == 3600.0
    assert "done" in viewer.read(CHECK_LOG)
    assert not viewer.exists("submission/results.csv")  # the reproduction's outputs are not the submission
    assert not (bus.root / "scratch" / "p" / "selfcheck").exists() or \
        not list((bus.root / "scratch" / "p" / "selfcheck").iterdir())  # wiped after


def test_a_failing_or_missing_or_silent_reproduction_says_what_to_fix(bus):
    proj = _paper_project(bus)
    tools = _writer(bus, proj)
    assert "there is no submission/reproduce.sh" in tools.call("check_reproduction", {})
    assert json.loads(proj.as_role("viewer").read(CHECK_JSON))["status"] == "missing"
    tools.call("write_file", {"path": "submission/reproduce.sh", "summary": "s", "content":
                              "echo Traceback: no module named torch\nexit 3\n"})
    out = tools.call("check_reproduction", {})
    assert out.startswith("reproduce.sh exited 3") and "no module named torch" in out, out
    assert "it wrote no file" in out
    tools.call("write_file", {"path": "submission/reproduce.sh", "summary": "s", "content": "echo fine\n"})
    out = tools.call("check_reproduction", {})
    assert out.startswith("reproduce.sh exited 0") and "it wrote no file: the judge finds no results" in out


def test_the_time_limit_is_the_operators_and_the_model_may_only_shorten_it(bus):
    proj = _paper_project(bus, reproduce_timeout_s=2)
    tools = _writer(bus, proj)
    tools.call("write_file", {"path": "submission/reproduce.sh", "summary": "s", "content": "echo go\nsleep 60\n"})
    out = tools.call("check_reproduction", {"timeout_s": 500})  # asks for more: gets the operator's 2 s
    assert "killed at its 2 s time limit" in out, out
    record = json.loads(proj.as_role("viewer").read(CHECK_JSON))
    assert record["status"] == "timeout" and record["timeout_s"] == 2 and record["duration_s"] < 30
    assert "must be at least 1 second" in _format_error(tools, {"timeout_s": 0})


def _format_error(tools, arguments) -> str:
    from actors.tools import FormatError

    with pytest.raises(FormatError) as e:
        tools.call("check_reproduction", arguments)
    return str(e.value)


def test_refused_where_the_grader_would_refuse_or_not_run_it(bus):
    proj = _paper_project(bus)
    tools = _writer(bus, proj)
    tools.call("write_file", {"path": "submission/reproduce.sh", "summary": "s",
                              "content": f"python3 {proj.dir}/submission/run.py\n"})
    out = tools.call("check_reproduction", {})
    assert out.startswith("ERROR: check_reproduction refused") and "absolute paths" in out, out
    assert not proj.as_role("viewer").exists(CHECK_JSON)
    code_dev = _paper_project(bus, "cd", code_dev=True)
    assert "Code-Dev" in _writer(bus, code_dev).call("check_reproduction", {})


def test_offered_only_in_a_paper_project_with_an_executor(bus):
    bus.create_project("mle")
    executor = SandboxExecutor(bus.config, policy=RunPolicy(sandbox="none"))
    mle = ToolBox(bus.project("mle").as_role("writer", "w"), ("check_reproduction", "finish"), executor=executor)
    assert mle.allowed == ("finish",)  # an MLE-bench task: its submission is a CSV (check_submission)
    proj = _paper_project(bus)
    assert ToolBox(proj.as_role("writer", "w"), ("check_reproduction",)).allowed == ()  # no executor
    assert "check_reproduction" in _writer(bus, proj).allowed
    # Called directly on a project the operator never set up as a paper's: refused, not run.
    assert executor.reproduce_submission("mle", "w", None).status == "refused"


@needs_bwrap
def test_in_the_sandbox_the_papers_folder_and_the_rubric_stay_hidden(bus):
    proj = _paper_project(bus)
    tools = _writer(bus, proj, sandbox="bwrap", hidden=(str(SHIPPED),))
    tools.call("write_file", {"path": "submission/reproduce.sh", "summary": "s", "content":
                              f"cat {SHIPPED}/rubric.json && echo LEAKED\necho ok > results.csv\n"})
    out = tools.call("check_reproduction", {})
    assert "LEAKED" not in out and "reproduce.sh exited 0" in out and "results.csv" in out, out
