"""Text that models and agents wrote, shown by every ``aisci`` command: literally (never
rich markup), without terminal control, cut, fast, and exit 0.

Before: a stop reason ``"all good [/red] done"`` ended ``aisci status`` (for every
project on the bus), ``aisci bus log`` and ``aisci resume`` with a ``MarkupError``; a
summary ``fixed [/bold] bug`` did the same to ``aisci bus query files``; a 1.2 MB reason
hung ``aisci run`` for minutes (rich wraps a long word in quadratic time).
"""

from __future__ import annotations

import time

import pytest
import yaml

from benchmarks.mlebench.task import Task, shipped_tasks
from bus import Bus
from cluster.cli import main
from cluster.display import clean, untrusted
from cluster.job import save_job
from cluster.run import make_job
from cluster.tasks import import_task

HOSTILE = ["all good [/red] done", "fixed [/bold] bug", "[bold]loud", "[link=file:///etc/passwd]x[/link]",
           "clear \x1b[2J\x1b]0;pwned\x07 screen", "rtl \u202e txt", "ding \x07 \x9b31m", ":warning: \\"]
BIG = "[/red]" + "A" * 1_000_000  # one unbroken word: the worst case for rich's wrapping


def _flat(text: str) -> str:
    """What a table shows with its borders, padding and folds taken out."""
    return "".join(text.replace("│", "").replace("┃", "").split())


def _literal(out: str, text: str) -> bool:
    return _flat(clean(text)) in _flat(out)


def _hostile_bus(root) -> Bus:
    """Projects in every state, each carrying untrusted text where a command prints it."""
    bus = Bus(root)
    for name, kind, reason in (("stopped-p", "stopped", HOSTILE[0]), ("failed-p", "failed", HOSTILE[2]),
                               ("pausing-p", "pause_requested", HOSTILE[3]), ("big-p", "stopped", BIG)):
        bus.create_project(name).as_role("system", "orchestrator").record(kind, reason)
    busy = bus.create_project("running-p")
    for i, text in enumerate(HOSTILE):
        busy.as_role("orchestrator", "orchestrator-1").record("dispatch", text, subtask=text, attempt=1)
        busy.as_role("coder", "coder-1").write(f"code/f{i}.py", "x = 1\n", summary=text)
    busy.as_role("coder", "coder-1").write("code/big.py", "x = 1\n", summary=BIG)
    busy.as_role("system", "report").write("report/report.md", "# Report\n" + "\n".join(HOSTILE) + "\n")
    sweep = bus.create_project("sweep-s").as_role("system", "sweep")
    sweep.write("sweep/members.yaml", yaml.safe_dump([{"project": p, "task": "t", "setting": "d", "seed": 0,
                                                       "model": "baseline"} for p in ("stopped-p", "big-p")]))
    return bus


def _run(root, *argv, capsys) -> str:
    t0 = time.perf_counter()
    assert main(["--root", str(root), *argv]) == 0, argv
    elapsed = time.perf_counter() - t0
    out = capsys.readouterr().out
    assert elapsed < 5, f"{argv} took {elapsed:.1f} s"  # generous: a few hundred ms here; was minutes for 1 MB
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out and "\x9b" not in out, argv
    assert len(out) < 200_000, (argv, len(out))  # the 1 MB string was cut
    return out


def test_every_command_prints_untrusted_text_literally_cut_and_fast(tmp_path, capsys):
    root = tmp_path / "root"
    _hostile_bus(root)
    out = _run(root, "status", capsys=capsys)  # every project on the bus, the hostile ones among them
    for name in ("stopped-p", "failed-p", "pausing-p", "big-p", "running-p"):
        assert name in out
    assert _literal(out, "stopped: " + HOSTILE[0]) and _literal(out, "[bold]") and _literal(out, "[link=file")
    assert "AAAAA" in out and "A" * 1000 not in _flat(out)
    out = _run(root, "status", "--sweep", "s", capsys=capsys)
    assert "stopped-p" in out and "running-p" not in out
    _run(root, "leaderboard", "s", capsys=capsys)

    for argv in (["bus", "log", "running-p"], ["events", "running-p"], ["bus", "query", "files", "running-p"]):
        out = _run(root, *argv, capsys=capsys)
        for text in HOSTILE:
            assert _literal(out, text), (argv, text)
        assert "AAAAA…" in _flat(out), argv
    for name in ("stopped-p", "big-p"):
        assert _literal(_run(root, "bus", "log", name, capsys=capsys), "[/red]")
    out = _run(root, "bus", "query", "map", "running-p", "--role", "coder", capsys=capsys)
    assert _literal(out, HOSTILE[1])

    out = _run(root, "report", "running-p", capsys=capsys)  # the whole document, its lines kept
    assert "all good [/red] done\n" in out and "[link=file:///etc/passwd]x[/link]\n" in out
    assert "clear \\x1b[2J\\x1b]0;pwned\\x07 screen" in out


def test_the_helpers_make_any_text_inert():
    from rich.console import Console

    console = Console(width=100, record=True, color_system=None)
    for text in [*HOSTILE, BIG, "\\", "x\\[bold]", "[", "]", "[/]", "[@click=quit]", "a\nb\r\nc\td", "", None, 3.5]:
        line = untrusted(text, 80)
        console.print(f"[yellow]{line}[/yellow] tail")  # raises MarkupError if anything leaked through
        shown = console.export_text()
        assert shown.endswith(" tail\n") and "\x1b" not in shown and "\n" not in shown[:-1], repr(text)
        assert len(clean(text, 80)) <= 80
    assert clean("a\nb\r\nc\td") == "a b c d"
    assert clean("x" * 301) == "x" * 299 + "…" and clean("x" * 300) == "x" * 300
    assert clean("\x1b[2J") == "\\x1b[2J"
    t0 = time.perf_counter()
    for _ in range(100):
        untrusted("[" * 5_000_000)
    assert time.perf_counter() - t0 < 5  # linear in the limit, not in the text


@pytest.mark.slow
def test_resume_prints_a_hostile_stop_reason_and_then_the_grade(ray_cluster, tmp_path, capsys):
    """The tester's case: a project that stopped with ``all good [/red] done`` (and 1 MB
    more): ``aisci resume`` printed a traceback instead of the grade line."""
    bus = Bus(tmp_path / "root")
    task = Task(shipped_tasks()["breast-cancer"])
    job = make_job(str(task.root), "ended", budget_s=60)
    import_task(bus, task, "ended")
    save_job(bus, job)
    bus.project("ended").as_role("system", "orchestrator").record("stopped", "all good [/red] done " + BIG)
    t0 = time.perf_counter()
    assert main(["--root", str(bus.root), "resume", "ended"]) == 0
    out = capsys.readouterr().out
    assert time.perf_counter() - t0 < 120  # was minutes: the 1 MB reason rendered in quadratic time
    assert "all good [/red] done [/red]AAAA" in out and "grade: score" in out and len(out) < 20_000, out[-3000:]
