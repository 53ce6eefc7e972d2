"""`aisci replay`: a recorded project run again with no model, on real Ray, the real
orchestrator, agent pool and bus: the same events, at full speed, to the same end
(a crash of the orchestrator's model included)."""

import json
import time

import pytest

from actors.llm.config import LLMConfig
from actors.llm.scripted import reply
from benchmarks.mlebench.task import shipped_tasks
from cluster.cli import main
from cluster.run import run_task

THINK_S = 2.0  # each recorded call's latency: 14 s of model time in all
KINDS = ("decision", "dispatch", "complete", "llm_call", "agent_start", "agent_end", "stopped", "failed", "graded")


def slow(r):
    r.latency_s = THINK_S
    return r.model_dump()


def decide(action, reason, role=None, goal=""):
    return slow(reply(text=json.dumps({"action": action, "role": role, "goal": goal, "reason": reason})))


def call(tool, **args):
    return slow(reply(calls=[(tool, args)]))


def story(bus, project):
    """What happened, without times or sequence numbers."""
    return [(e["kind"], e["role"], e["subtask"], e["run"], e["status"])
            for e in bus.project(project).events().to_pylist() if e["kind"] in KINDS]


@pytest.mark.slow  # a whole project / a CLI process starting Ray of its own (10-22 s)
def test_a_recorded_project_replays_to_the_same_events_much_faster(ray_cluster, bus, capsys):
    refused = {"error": {"type": "LLMError", "message": "the server refused the request: content filter"}}
    script = {
        "orchestrator": [decide("dispatch", "nothing known", "analyst", "Understand the task"),
                         decide("dispatch", "understood", "coder", "Write code/train.py"),
                         refused],  # the model's server refused the third decision
        "analyst-1": [call("read_file", path="task/description.md"),
                      call("write_file", path="analysis/task.md", content="10 digits", summary="the task"),
                      call("finish", summary="ten classes, 64 pixels")],
        "coder-1": [call("write_file", path="code/train.py", content="print(1)\n", summary="a stub"),
                    call("finish", summary="wrote code/train.py")],
    }
    t0 = time.monotonic()
    out = run_task(bus, str(shipped_tasks()["digits"]), project="rec", llm=LLMConfig(backend="scripted", script=script),
                   budget_s=600, allow_unsandboxed=True)
    recorded_s = time.monotonic() - t0
    assert out.reason.startswith("the orchestrator's model failed: LLMError: the server refused the request")
    settings = [e for e in bus.project("rec").events().to_pylist() if e["kind"] == "llm_settings"]
    assert [(e["status"], e["model"]) for e in settings] == [("native", "scripted/")]  # how this start talks to the model

    t0 = time.monotonic()
    assert main(["--root", str(bus.root), "replay", "rec", "--project", "rep"]) == 0
    replay_s = time.monotonic() - t0
    assert "the orchestrator's model failed: LLMError" in capsys.readouterr().out
    assert story(bus, "rep") == story(bus, "rec") and len(story(bus, "rec")) > 20
    model_s = [sum(dict(e["metrics"])["latency_s"] for e in bus.project(p).events().to_pylist()
                   if e["kind"] == "llm_call") for p in ("rec", "rep")]
    # 7 calls that replied: the recording slept 2 s each; the replay none (beside a CPU-bound
    # job its 7 calls still took 4.3 s of the real, unslept kind, so the bound is half).
    assert model_s[0] >= 7 * THINK_S and model_s[1] < 7 * THINK_S / 2, model_s
    # The recorded latencies are what a replay drops (above); the wall times only printed:
    # on a loaded machine start-up varies by more than the 14 s of thinking (0.008 s short, once).
    print(f"recorded {recorded_s:.1f} s, replayed {replay_s:.1f} s")
    # A replay into an existing project: one line, exit 2, before anything starts.
    assert main(["--root", str(bus.root), "replay", "rec", "--project", "rep"]) == 2
    assert "exists already" in capsys.readouterr().err


@pytest.mark.slow  # a whole project, then its replay (60-80 s)
def test_a_project_cut_by_its_budget_between_two_calls_replays_to_a_clean_stop(ray_cluster, bus, capsys):
    """The recorded agent's first call takes 12 s of model time, its `run` the rest of
    the 40 s budget: it stops before its second call, and the orchestrator stops on the
    budget, neither asking the model again (a 20 s budget was too short beside a
    CPU-bound job: the coder's actor once started after it, with no call at all). At full speed the replay reaches both
    points inside the budget and asks past the recording: that is a stop as the
    recorded one, not a fault (CI's vLLM stage: the replay of a project whose budget
    ended during ensemble-1's run failed with ScriptExhausted, exit 70)."""
    first = reply(calls=[("run", {"command": "sleep 30"})])
    first.latency_s = 12.0
    script = {
        "orchestrator": [reply(text=json.dumps({"action": "dispatch", "role": "coder", "goal": "Try the machine",
                                                "reason": "start"})).model_dump()],
        "coder-1": [first.model_dump(), reply(calls=[("finish", {"summary": "never asked for in the recording"})]).model_dump()],
    }
    out = run_task(bus, str(shipped_tasks()["digits"]), project="cut", llm=LLMConfig(backend="scripted", script=script),
                   budget_s=40, allow_unsandboxed=True)
    assert out.reason.startswith("wall-clock budget spent"), out.reason
    calls = [e["role"] for e in bus.project("cut").events().to_pylist() if e["kind"] == "llm_call"]
    assert calls == ["orchestrator", "coder"], calls  # the finish was never asked for

    capsys.readouterr()
    assert main(["--root", str(bus.root), "replay", "cut", "--project", "cut-rep"]) == 0
    printed = capsys.readouterr().out
    assert "ScriptExhausted" not in printed, printed[-2000:]
    events = bus.project("cut-rep").events().to_pylist()
    ends = [e["summary"] for e in events if e["kind"] == "agent_end"]
    assert len(ends) == 1 and ends[0].startswith("budget: stopped after"), ends
    assert "failed" not in [e["kind"] for e in events]
    # Where the replay asked past the recording, that is said; beside a CPU-bound job its
    # start-up left the real `sleep 30` under a second, and the replay's own budget ended it
    # first: a clean stop too (RecordingEnded itself: tests/actors/test_agent.py).
    said = [e["summary"] for e in events if e["kind"] in ("agent_end", "stopped")]
    assert any("recording" in s or "wall-clock budget" in s for s in said), said
