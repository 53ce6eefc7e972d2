"""The orchestrator's decisions: prompts laid out for a prefix cache, and a model
fault that ends the project cleanly instead of killing it. The real Orchestrator, LLM
policy, agent loop and bus, with the scripted model (agents run in this process)."""

import json
import socket
from pathlib import Path

import pytest

from actors.agent import Agent
from actors.llm.config import LLMConfig, make_llm
from actors.llm.protocol import LLMUnavailable
from actors.llm.scripted import ScriptedLLM, reply
from actors.llm_policy import LLMPolicy
from actors.orchestrator import Orchestrator, OrchestratorConfig
from actors.state import State

DIGITS = Path(__file__).parents[2] / "benchmarks" / "mlebench" / "tasks" / "digits" / "description.md"


def decide(action, reason, role=None, goal=""):
    return reply(text=json.dumps({"action": action, "role": role, "goal": goal, "reason": reason}))


def call(tool, **args):
    return reply(calls=[(tool, args)])


def run_project(bus, orchestrator_script, agent_script, name="p"):
    proj = bus.create_project(name)
    proj.as_role("system").write("task/description.md", DIGITS.read_text(), summary="the task")
    proj.as_role("system").write("task/train.csv", "id,x,target\n1,0.5,3\n", summary="training data")
    llm = ScriptedLLM({"orchestrator": orchestrator_script, **agent_script})
    agent = Agent(bus, llm)
    config = OrchestratorConfig(project=name, policy="llm", budget_s=600)
    orchestrator = Orchestrator(bus, config, LLMPolicy(bus, llm), lambda subtasks: [agent.run(name, s) for s in subtasks],
                                lambda specs: [])
    return orchestrator.run(), llm


def common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_consecutive_decision_prompts_share_most_of_their_text(bus):
    state, llm = run_project(bus, [
        decide("dispatch", "nothing known yet", "analyst", "Understand the task and the data"),
        decide("dispatch", "the data is understood", "planner", "Write a plan"),
        decide("dispatch", "there is a plan", "coder", "Write code/train.py"),
        decide("stop", "enough for a test"),
    ], {
        "analyst-1": [call("read_file", path="task/description.md"),
                      call("write_file", path="analysis/data.md", content="64 pixels, 10 classes", summary="the data"),
                      call("finish", summary="the data has 64 pixel columns and 10 classes")],
        "planner-1": [call("write_file", path="plan/plan.md", content="1. logistic regression", summary="the plan"),
                      call("finish", summary="planned a logistic regression baseline")],
        "coder-1": [call("write_file", path="code/train.py", content="print(1)\n", summary="the pipeline"),
                    call("finish", summary="wrote code/train.py")],
    })
    assert state.stop_reason.startswith("enough for a test; ")
    prompts = [r.messages[0]["content"] for r in llm.requests if r.tag == "orchestrator"]
    assert len(prompts) == 4
    for before, after in zip(prompts, prompts[1:]):
        shared = common_prefix(before, after)
        assert shared > 0.8 * min(len(before), len(after)), (shared, len(before), after[shared - 80:shared + 80])
    last = prompts[-1]
    assert last.rstrip().splitlines()[-1].startswith("Now: step 4 of 40")  # what changes every call, last
    assert "Predict which digit" in last and "analysis/data.md" in last
    assert "- analyst-1: finished: the data has 64 pixel columns" in last  # what the agent said reaches the model
    assert "plan/decisions.md" not in last  # its own renderings: the history says it


def test_a_repeating_agent_is_ended_and_the_orchestrator_reads_why(bus):
    _, llm = run_project(bus, [
        decide("dispatch", "nothing known yet", "analyst", "Understand the task"),
        decide("stop", "the analyst is stuck"),
    ], {"analyst-1": [call("read_file", path="operator/job.json")] * 24})
    prompt = [r.messages[0]["content"] for r in llm.requests if r.tag == "orchestrator"][-1]
    assert "- analyst-1: failed: repeated call: the same call read_file" in prompt


def test_an_unreachable_orchestrator_model_fails_the_project_resumably_and_other_model_faults_stop_it(bus):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = make_llm(LLMConfig(backend="openai", base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=0,
                               timeout_s=2))
    bus.create_project("p")
    config = OrchestratorConfig(project="p", policy="llm")
    with pytest.raises(LLMUnavailable, match="could not reach"):
        Orchestrator(bus, config, LLMPolicy(bus, model), lambda subtasks: [], lambda specs: []).run()
    after = State.from_events(bus.project("p").events(), config)
    # failed, not ended: once the endpoint is back, a resume continues the project
    assert after.failed and "LLMUnavailable" in after.failed and not after.stopped
    # A scripted model that runs out mid-project is a model fault too: a stop, never a crash.
    state, _ = run_project(bus, [decide("dispatch", "start", "analyst", "look")],
                           {"analyst-1": [call("finish", summary="looked")]}, name="q")
    assert state.stop_reason.startswith("the orchestrator's model failed: ScriptExhausted")


def test_the_decision_prompt_fits_a_small_window_and_says_what_it_left_out(bus):
    proj = bus.create_project("p")
    proj.as_role("system").write("task/description.md", "Predict the target. " * 400, summary="a long task")
    for i in range(200):
        proj.as_role("system").write(f"analysis/note-{i:03d}.md", "x", summary=f"note {i}: " + "about the data " * 5)
    window = LLMConfig(backend="openai", context_tokens=3_000, chars_per_token=4).window()
    llm = ScriptedLLM({"orchestrator": [decide("stop", "fine")]})
    LLMPolicy(bus, llm, window=window).decide(State(config=OrchestratorConfig(project="p")))
    prompt = llm.requests[0].messages[0]["content"]
    assert len(prompt) <= window.prompt_chars(LLMPolicy.MAX_REPLY_TOKENS)
    assert "more characters of task/description.md not shown" in prompt and "more files not shown" in prompt


def test_a_paper_projects_decision_prompt_shows_the_paper(bus):
    """The breaker: a paper project's prompt said "The task (task/description.md): (no
    task/description.md)". It now shows the paper's head and names its file."""
    proj = bus.create_project("pp")
    proj.as_role("system").write("task/paper.md", "# Scaling before distance\n\nWe claim kNN needs scaling.\n" +
                                 "x" * 10_000, summary="the paper")
    llm = ScriptedLLM({"orchestrator": [decide("stop", "seen")]})
    config = OrchestratorConfig(project="pp", policy="llm", budget_s=600, track="paper")
    Orchestrator(bus, config, LLMPolicy(bus, llm), lambda subtasks: [], lambda specs: []).run()
    prompt = next(r.messages[0]["content"] for r in llm.requests if r.tag == "orchestrator")
    assert "(task/paper.md, the paper to reproduce" in prompt and "We claim kNN needs scaling." in prompt
    assert "no task/description.md" not in prompt and "more characters of task/paper.md not shown" in prompt
