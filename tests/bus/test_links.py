"""The bus never follows a symbolic link, not even one inside the project, and not
even one a process swaps in between a check and the I/O.

Experiment runs are hostile code that can make links in the project folder; scopes
are checked on the path as written, so following a link would let it decide where
a read or a write lands.
"""

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bus import InvalidPath, NotFound

REPO = Path(__file__).resolve().parents[2]
TASK = "the task, as the operator wrote it\n"


@pytest.fixture
def proj(project):
    system = project.as_role("system")
    system.write("task/description.md", TASK)
    system.write("code/train.py", "print('train')\n")
    system.write("submission/submission.csv", "id,answer\n1,42\n")
    system.write("experiments/r1/spec.json", "{}")
    return project


def refused_rules(project):
    return [r["summary"].split("]")[0] + "]" for r in project.events().to_pylist() if r["kind"] == "refused"]


# -- the three faults found ---------------------------------------------------------------

def test_framework_appends_never_follow_a_run_made_link_into_the_task(proj):
    """A run replaced experiments/<id>/output.log with a link to ../../task/description.md:
    the framework's appends of the run's output landed in the task file."""
    system = proj.as_role("system", "run-r1")
    system.write("experiments/r1/output.log", b"")
    log = proj.dir / "experiments" / "r1" / "output.log"
    log.unlink()
    os.symlink("../../task/description.md", log)  # what the run did
    with pytest.raises(InvalidPath, match="never follows links"):
        system.append("experiments/r1/output.log", "epoch 1: loss 0.3\n")
    assert (proj.dir / "task" / "description.md").read_text() == TASK
    assert refused_rules(proj)[-1] == "[symlink]"


def test_a_system_write_never_lands_on_the_code_through_a_link(proj):
    """result.json linked to ../../code/train.py: the runner's write overwrote the code."""
    os.symlink("../../code/train.py", proj.dir / "experiments" / "r1" / "result.json")
    system = proj.as_role("system", "run-r1")
    with pytest.raises(InvalidPath, match="never follows links"):
        system.write("experiments/r1/result.json", '{"status": "ok"}')
    assert (proj.dir / "code" / "train.py").read_text() == "print('train')\n"
    assert os.path.islink(proj.dir / "experiments" / "r1" / "result.json")  # left as it is


def test_scopes_hold_against_links_to_folders(proj):
    """A run-made link let the experimenter's copy_file land in submission/ and the
    coder read submission/: scopes are checked on the path as written."""
    os.symlink("../../submission", proj.dir / "experiments" / "r1" / "out")
    experimenter = proj.as_role("experimenter")
    with pytest.raises(InvalidPath, match="'experiments/r1/out' is a symlink, and the bus never follows links"):  # copy_file = read, then write
        experimenter.write("experiments/r1/out/submission.csv",
                           experimenter.read_bytes("experiments/r1/spec.json"))
    assert (proj.dir / "submission" / "submission.csv").read_text() == "id,answer\n1,42\n"
    coder = proj.as_role("coder")
    with pytest.raises(InvalidPath, match="never follows links"):
        coder.read("experiments/r1/out/submission.csv")
    os.symlink("../submission/submission.csv", proj.dir / "code" / "answers.csv")
    with pytest.raises(InvalidPath, match="never follows links"):
        coder.read("code/answers.csv")


# -- every operation, every kind of link ------------------------------------------------

@pytest.mark.parametrize("where", ["file", "folder", "dangling"])
@pytest.mark.parametrize("op", ["read", "exists", "write", "append", "versions", "read_version", "list"])
def test_every_operation_refuses_a_path_with_a_link(proj, where, op):
    code = proj.dir / "code"
    if where == "file":
        os.symlink("train.py", code / "alias.py")
        path = "code/alias.py"
    elif where == "folder":
        os.symlink(".", code / "here")
        path = "code/here/train.py"
    else:
        os.symlink("nowhere.py", code / "alias.py")
        path = "code/alias.py"
    coder = proj.as_role("coder")
    calls = {
        "read": lambda: coder.read(path),
        "exists": lambda: coder.exists(path),
        "write": lambda: coder.write(path, "overwritten\n"),
        "append": lambda: coder.append(path, "appended\n"),
        "versions": lambda: coder.versions(path),
        "read_version": lambda: coder.read_version(path, 1),
        "list": lambda: coder.list(path.rsplit("/", 1)[0] if where == "folder" else path),
    }
    with pytest.raises(InvalidPath, match="never follows links"):
        calls[op]()
    assert (code / "train.py").read_text() == "print('train')\n"
    assert not (code / "nowhere.py").exists()
    assert refused_rules(proj)[-1] == "[symlink]"


def test_fifos_never_block_the_bus(proj, tmp_path):
    """A FIFO left where the bus reads or replaces a file: the bus used to open it and
    wait for a writer forever (replacing a file first reads what it replaces)."""
    os.mkfifo(proj.dir / "experiments" / "r1" / "result.json")
    os.mkfifo(proj.dir / "code" / "pipe.py")
    script = (
        "import sys; from bus import Bus, BusRefusal\n"
        "p = Bus(sys.argv[1]).project('proj')\n"
        "for role, op, path in [('system', 'write', 'experiments/r1/result.json'), ('coder', 'read', 'code/pipe.py'),\n"
        "                       ('coder', 'append', 'code/pipe.py')]:\n"
        "    v = p.as_role(role)\n"
        "    try:\n"
        "        v.write(path, '{}') if op == 'write' else v.append(path, 'x') if op == 'append' else v.read(path)\n"
        "        print(op, 'done')\n"
        "    except BusRefusal as e:\n"
        "        print(op, 'refused:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(proj.bus.root)], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("refused: ") == 3 and out.stdout.count("is a FIFO, not a regular file") == 3


# -- a process racing the bus -----------------------------------------------------------

def _has_renameat2() -> bool:
    return hasattr(ctypes.CDLL(None), "renameat2")


def _swapper(tmp_path, folder: Path, name: str, target: str, tag: str):
    stop, ready = tmp_path / f"stop-{tag}", tmp_path / f"ready-{tag}"
    proc = subprocess.Popen([sys.executable, "-m", "tests.bus.workers", "swap", str(folder), name, target,
                             str(stop), str(ready)], cwd=REPO)
    while not ready.exists():  # the swapper says when it has swapped once
        assert proc.poll() is None, "the swapper died"
    return proc, stop, ready


def _stop(proc, stop, ready) -> int:
    stop.touch()
    assert proc.wait(timeout=60) == 0
    return int(ready.read_text())


@pytest.mark.slow
@pytest.mark.skipif(not _has_renameat2(), reason="needs renameat2 (glibc >= 2.28) to swap atomically")
def test_a_process_swapping_folders_and_files_for_links_never_wins(proj, tmp_path):
    """A real process swaps, as fast as it can and atomically, (1) a run's folder with a
    link to task/, (2) the run's output.log with a link to the task file, (3) a code
    folder with a link to submission/, while the bus writes, appends and reads there.
    Every operation lands where its path says or is refused; none goes through a link."""
    system = proj.as_role("system", "run-r1")
    system.write("experiments/r2/output.log", b"")
    proj.as_role("coder").write("code/pkg/util.py", "def f(): pass\n")
    swappers = [
        _swapper(tmp_path, proj.dir / "experiments", "r1", "../task", "dir"),
        _swapper(tmp_path, proj.dir / "experiments" / "r2", "output.log", "../../task/description.md", "file"),
        _swapper(tmp_path, proj.dir / "code", "pkg", "../submission", "read"),
    ]
    coder = proj.as_role("coder")
    outcomes = {"done": 0, "refused": 0}
    try:
        for i in range(400):
            for op in (lambda: system.write("experiments/r1/result.json", f'{{"i": {i}}}'),
                       lambda: system.append("experiments/r2/output.log", f"line {i}\n"),
                       lambda: coder.read("code/pkg/util.py")):
                try:
                    got = op()
                    assert not (isinstance(got, str) and "answer" in got), "read submission/ through a link"
                    outcomes["done"] += 1
                except (NotFound, InvalidPath):  # LinkRefused is an InvalidPath
                    outcomes["refused"] += 1
    finally:
        swaps = [_stop(*s) for s in swappers]
    assert min(swaps) > 100, f"the swappers hardly ran: {swaps}"
    assert outcomes["done"] > 50 and outcomes["refused"] > 50, outcomes  # both states were hit
    task = proj.dir / "task"
    assert sorted(os.listdir(task)) == ["description.md"] and (task / "description.md").read_text() == TASK
    assert (proj.dir / "submission" / "submission.csv").read_text() == "id,answer\n1,42\n"
    log = (proj.dir / "experiments" / "r2" / "output.log").read_text().splitlines()
    assert all(line.startswith("line ") for line in log) and len(log) == len(set(log))


def test_repair_never_follows_links_and_reports_them(proj):
    """Repair hashed, adopted and truncated what it found by path: it followed links,
    and opening a FIFO blocked it for good. It runs in a child here, with a time limit."""
    os.symlink("../../task/description.md", proj.dir / "experiments" / "r1" / "output.log")
    os.symlink("../task", proj.dir / "experiments" / "r1" / "data")
    os.mkfifo(proj.dir / "experiments" / "r1" / "fifo")
    script = ("import sys, json; from bus import Bus; from bus.repair import repair\n"
              "r = repair(Bus(sys.argv[1]), 'proj')\n"
              "print(json.dumps({'left_alone': r.left_alone, 'clean': r.clean, 'recovered': r.recovered}))\n")
    out = subprocess.run([sys.executable, "-c", script, str(proj.bus.root)], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert sorted(report["left_alone"]) == [
        "experiments/r1/data (a symbolic link: the bus never follows links)",
        "experiments/r1/fifo (a FIFO: not a regular file)",
        "experiments/r1/output.log (a symbolic link: the bus never follows links)",
    ]
    assert report["clean"] and report["recovered"] == []  # the task file is not adopted under a second name
    assert (proj.dir / "task" / "description.md").read_text() == TASK
    assert os.path.islink(proj.dir / "experiments" / "r1" / "output.log")
