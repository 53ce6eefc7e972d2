"""What the tests marked ``vllm`` share: the packaged SmolLM2 model as an HF folder
(converted once, ``benchmarks.perf.smollm2``) and the engine settings every one of them
uses, so that the tests in one module share one engine (start-up: 2-4 min on 2 cores)."""

import json

import pytest

from bus import Bus

# A window that fits the orchestrator's decision prompt and a reply; a share of host
# memory that leaves room beside the rest of the machine (vLLM's 0.9 failed here).
ENGINE = {"gpus": 0, "max_model_len": 4096, "memory_fraction": 0.3}


def smollm2_dir() -> str:
    """The model folder, or the test is skipped where vLLM or the model is not installed."""
    pytest.importorskip("vllm", reason="the vllm extra is not installed")
    from benchmarks.perf.smollm2 import model_dir, packaged_gguf

    try:
        packaged_gguf()
    except ModuleNotFoundError as e:
        pytest.skip(str(e))
    return model_dir()


def assert_ended_cleanly(bus: Bus, project: str, backend: str) -> None:
    """A stopped event, model calls by that backend, a report, and a grade: valid, or a reason."""
    events = bus.project(project).events().to_pylist()
    kinds = [e["kind"] for e in events]
    assert "stopped" in kinds and "failed" not in kinds, [(e["kind"], e["summary"]) for e in events][-10:]
    assert kinds.count("llm_call") >= 1
    view = bus.project(project).as_role("viewer")
    assert json.loads(view.read(view.list("logs/llm")[0]))["reply"]["backend"] == backend
    assert "report/report.md" in view.list("report")
    grade = json.loads(view.read("report/grade.json"))
    assert grade["valid_submission"] or grade["reason"], grade


def assert_replays(root, project: str, capsys) -> None:
    """``aisci replay`` of ``project`` with no model: the same decisions and the same
    subtasks, in order. A run that ended on its wall-clock budget cannot end there in
    a replay (at full speed the budget is not spent), so the recorded run's decisions
    must be where the replay's begin."""
    from cluster.cli import main

    capsys.readouterr()
    assert main(["--root", str(root), "replay", project, "--project", f"{project}-replay"]) == 0, \
        capsys.readouterr().out[-3000:]
    bus = Bus(root)

    def story(name):
        events = bus.project(name).events().to_pylist()
        return ([e["summary"] for e in events if e["kind"] == "decision"],
                [e["subtask"] for e in events if e["kind"] == "dispatch" and e["subtask"]])

    (decided, dispatched), (replayed, redispatched) = story(project), story(f"{project}-replay")
    assert decided and replayed[:len(decided)] == decided, (decided, replayed)
    assert redispatched[:len(dispatched)] == dispatched, (dispatched, redispatched)
