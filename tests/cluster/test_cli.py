"""The `aisci` command line, run for real (in-process main() and as a console script)."""

import os
import subprocess
import sys

from bus import Bus
from cluster.cli import main


def test_demo_then_inspect(tmp_path, capsys):
    root = str(tmp_path / "root")
    assert main(["--root", root, "demo"]) == 0
    out = capsys.readouterr().out
    assert "demo-wine: 0.972" in out and "refused" in out
    assert Bus(root).projects() == ["demo-diabetes", "demo-iris", "demo-wine"]

    assert main(["--root", root, "bus", "ls"]) == 0
    assert "demo-iris" in capsys.readouterr().out
    assert main(["--root", root, "bus", "log", "demo-iris", "--kind", "refused"]) == 0
    assert "submission" in capsys.readouterr().out
    assert main(["--root", root, "bus", "query", "best", "--metric", "score"]) == 0
    assert "0.972" in capsys.readouterr().out
    assert main(["--root", root, "bus", "query", "map", "demo-iris", "--role", "analyst"]) == 0
    out = capsys.readouterr().out
    assert "analysis/data.md" in out and "code/train.py" not in out
    assert main(["--root", root, "bus", "query", "tokens"]) == 0
    assert main(["--root", root, "bus", "compact"]) == 0
    assert main(["--root", root, "bus", "repair"]) == 0
    assert capsys.readouterr().out.count("consistent") == 3


def test_errors_are_clear_and_exit_nonzero(tmp_path, capsys):
    root = str(tmp_path / "root")
    assert main(["--root", root, "bus", "log", "Bad Name"]) == 2
    assert "invalid project name" in capsys.readouterr().err
    assert main(["--root", root, "bus", "query", "files", "missing"]) == 2
    assert "no project 'missing'" in capsys.readouterr().err


def test_console_script_uses_aisci_root(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "aisci")
    env = dict(os.environ, AISCI_ROOT=str(tmp_path / "envroot"))
    out = subprocess.run([exe, "demo"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert Bus(tmp_path / "envroot").projects() == ["demo-diabetes", "demo-iris", "demo-wine"]


def test_user_mistakes_are_one_line_before_anything_starts(tmp_path, capsys):
    """Issue 10 kind 13 / issue 13: each mistake is one line and exit 2, no traceback,
    nothing written (no Ray started: these return in well under a second)."""
    root = str(tmp_path / "root")
    cases = [
        (["run", "no-such-task"], "no task 'no-such-task'"),
        (["run", str(tmp_path / "no" / "dir")], "no task"),
        (["run", "digits", "--budget", "soon"], "budget 'soon'"),
        (["run", "digits", "--model", "gpt"], "use baseline, openai:<model>"),
        (["run", "digits", "--model", "openai:m"], "needs the endpoint"),
        (["run", "digits", "--agents", "0"], "agents"),
        (["run", "digits", "--policy", str(tmp_path / "none.yaml")], "--policy"),
        (["resume", "nope"], "no project 'nope'"),
        (["bus", "query", "tokens", "--project", "nope"], "no project 'nope'"),
        # A value that starts with a dash is the option's value, checked by the option
        # (argparse said "expected one argument", which hid the mistake).
        (["run", "digits", "--budget", "-5m"], "budget '-5m': use a positive"),
        (["paper", "scaling-knn-vs-forest", "--reproduce-timeout", "0"], "--reproduce-timeout '0': use a positive"),
        (["run", "digits", "--agents", "-3"], "-3: give 1 or more"),
        (["run", "digits", "--branches", "-2"], "-2: give 1 or more"),
        # The breaker: "invalid OrchestratorConfig setting: branches: Input should be ...".
        (["run", "digits", "--branches", "65"], "--branches: 65: give at most 64"),
        (["run", "digits", "--branches", "999"], "--branches: 999: give at most 64"),
        (["run", "digits", "--budget", "99999d"], "give at most 365d"),
        # A target the metric never gives: the project ran its whole budget (digits: accuracy).
        (["run", "digits", "--target", "5"], "--target 5: accuracy scores lie in [0, 1]"),
        (["run", "digits", "--target", "-0.1"], "--target -0.1: accuracy scores lie in [0, 1]"),
        (["run", "digits", "--budget", "1e300"], "give at most 365d"),
        (["leaderboard", "nosuch"], "no sweep 'nosuch' under"),
        (["status", "--sweep", "nosuch"], "no sweep 'nosuch' under"),
        (["run", "digits", "--model", "vllm:/no/such/model"], "no such file or folder"),
        (["run", "digits", "--model", "vllm:"], "name the model after the colon (vllm:<model path>)"),
        (["run", "digits", "--model", "openai: ", "--base-url", "http://localhost:1/v1"], "name the model"),
        (["run", "digits", "--model", "baseline:x"], "the baseline takes no model name"),
        (["run", "digits", "--project", ""], "--project: give a name"),  # was a new project, exit 0
        (["bus", "repair", "nosuch"], "no project 'nosuch'"),  # refused, but wrote its journal's SEQ
        (["bus", "query", "best", "--metric", "nosuch"], "no event on this bus has the metric 'nosuch'"),
        (["events", "x", "--since", "-1"], "--since: -1: give 0 or more"),
        (["status", "--watch", "-1"], "give a number above 0"),
        (["status", "--watch", "nan"], "give a number above 0"),
    ]
    for argv, needle in cases:
        assert main(["--root", root, *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("aisci: ") and needle in err and "Traceback" not in err, (argv, err)
        assert err.count("\n") == 1, err
    assert Bus(root).projects() == [] and not (tmp_path / "root" / "index" / "journal" / "nosuch").exists()
    main(["--root", root, "demo"])
    capsys.readouterr()
    assert main(["--root", root, "bus", "log", "demo-iris", "--kind", "nonsense"]) == 2
    assert "no events of kind nonsense; its kinds:" in capsys.readouterr().err


def test_status_shows_every_project_when_one_is_damaged(tmp_path, capsys):
    """The breaker's example: garbage in one project's sequence counter made `aisci
    status` print only that error, hiding every healthy project."""
    from bus import Bus

    bus = Bus(tmp_path / "root")
    for name in ("z2", "z3"):
        bus.create_project(name).as_role("system", "t").record("started", "the job started")
    (tmp_path / "root" / "index" / "journal" / "z2" / "SEQ").write_bytes(b"garbage")
    capsys.readouterr()
    assert main(["--root", str(tmp_path / "root"), "status"]) == 0
    out = capsys.readouterr().out
    unfolded = "".join(c for c in out if not c.isspace() and c != "│")  # a long cell folds anywhere
    assert "z3" in out and "damaged" in out and "busrepairz2" in unfolded


def test_numbers_and_names_a_user_gives_are_checked_before_anything_starts(tmp_path, capsys):
    root = str(tmp_path / "root")
    for argv, says in ((["run", "digits", "--target", "nan"], "--target nan: give a finite score"),
                       (["run", "digits", "--project", "../x"], "invalid project name '../x'"),
                       (["run", "digits", "--grace", "-1"], "-1 seconds: give a number from 0 up"),
                       (["report", "nosuch"], "`aisci status` lists the projects"),
                       (["--root", "/proc/nosuch/x", "status"], "cannot use /proc/nosuch/x as the bus root (/proc/nosuch")):
        capsys.readouterr()
        try:
            code = main(["--root", root, *argv])
        except SystemExit as e:  # argparse's own checks: usage and one error line, exit 2
            code = e.code
        assert code == 2, argv
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err and "Bus.create_project" not in err, (argv, err)
    assert not (tmp_path / "root" / "projects").exists() or not os.listdir(tmp_path / "root" / "projects")


def test_the_report_of_a_project_not_ended_says_where_it_stands(tmp_path, capsys):
    """A paused project has no report (it is written at the end): the command says it is
    paused and what shows its runs, instead of a bare "no report yet" (the breaker)."""
    bus = Bus(tmp_path / "root")
    system = bus.create_project("spot").as_role("system", "test")
    system.record("started", "the job started")
    system.record("pause_requested", "preempted (SIGTERM)")
    system.record("paused", "preempted (SIGTERM); in flight: none")
    assert main(["--root", str(bus.root), "report", "spot"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "no report yet" in out and "paused: preempted (SIGTERM)" in out and "aisci status spot" in out, out


def test_status_of_a_root_with_no_project_says_so(tmp_path, capsys):
    """A new or mistyped --root printed an empty table and exit 0 (the breaker)."""
    assert main(["--root", str(tmp_path / "new"), "status"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"No projects under {tmp_path / 'new'}" in out and "aisci run" in out, out
