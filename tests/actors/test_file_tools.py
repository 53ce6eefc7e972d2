"""edit_file, search_files and wait_for_runs through the real agent loop and the real
bus, against the scripted model: each tool's happy path and each kind of bad input a
model can send (no Ray here)."""

import time

import pytest

from actors.agent import Agent, Subtask
from actors.llm.scripted import ScriptedLLM, reply
from actors.runs import RunResult, record_result
from actors.text_protocol import tool_listing
from actors.tools import SCHEMAS

SRC = "import sys\n\ndef main():\n    x = 1\n    return x\n\ndef other():\n    x = 1\n    return x\n"


@pytest.fixture
def proj(bus):
    p = bus.create_project("iris")
    p.as_role("system").write("task/description.md", "Classify iris flowers.\n", summary="task")
    p.as_role("coder", "coder-0").write("code/train.py", SRC, summary="train")
    return p


def results_of(bus, calls, role="coder", sid="s1", **agent):
    """Run one call per step, then finish; returns what the model saw for each call."""
    llm = ScriptedLLM([reply(calls=[c]) for c in calls] + [reply(calls=[("finish", {"summary": "done"})])])
    result = Agent(bus, llm, **agent).run("iris", Subtask(id=sid, role=role, goal="work"))
    assert result.status == "finished", result.summary
    return [llm.requests[n].messages[-1]["content"] for n in range(1, len(calls) + 1)]


# -- edit_file -------------------------------------------------------------------------

def test_edit_file_replaces_the_one_match_as_a_new_version_by_the_agent(bus, proj):
    [out] = results_of(bus, [("edit_file", {"path": "code/train.py", "old": "def main():\n    x = 1",
                                            "new": "def main():\n    x = 2", "summary": "x is 2"})])
    assert out.startswith("edited code/train.py at line 3")
    assert proj.as_role("viewer").read("code/train.py") == SRC.replace("def main():\n    x = 1", "def main():\n    x = 2")
    row = proj.as_role("viewer").versions("code/train.py").to_pylist()[-1]
    assert (row["instance"], row["summary"]) == ("coder-s1", "x is 2")


def test_edit_file_with_several_matches_says_how_many_and_where_and_changes_nothing(bus, proj):
    [out] = results_of(bus, [("edit_file", {"path": "code/train.py", "old": "x = 1", "new": "x = 2"})])
    assert "occurs 2 times" in out and "at line 4" in out and "at line 8" in out and "def other():" in out
    assert proj.as_role("viewer").read("code/train.py") == SRC


def test_edit_file_with_no_match_says_so_and_where_the_first_line_is_spaces_aside(bus, proj):
    [none, near] = results_of(bus, [
        ("edit_file", {"path": "code/train.py", "old": "y = 3", "new": "y = 4"}),
        ("edit_file", {"path": "code/train.py", "old": "  def main():", "new": "def run():"}),
    ])
    assert "occurs 0 times" in none and "line" not in none.split("occurs 0 times")[1].split(";")[0]
    assert "occurs 0 times" in near and "spaces aside, is at line 3" in near
    assert proj.as_role("viewer").read("code/train.py") == SRC


def test_edit_file_refuses_empty_or_unchanged_snippets_non_utf8_files_and_paths_outside_scope(bus, proj):
    proj.as_role("coder", "coder-0").write("code/blob.bin", b"\xff\xfe abc \x00", summary="bytes")
    empty, same, binary, outside, traversal = results_of(bus, [
        ("edit_file", {"path": "code/train.py", "old": "", "new": "x"}),
        ("edit_file", {"path": "code/train.py", "old": "x = 1", "new": "x = 1"}),
        ("edit_file", {"path": "code/blob.bin", "old": "abc", "new": "def"}),
        ("edit_file", {"path": "task/description.md", "old": "iris", "new": "roses"}),
        ("edit_file", {"path": "code/../task/description.md", "old": "iris", "new": "roses"}),
    ])
    assert "`old` is empty" in empty and "the same" in same
    assert "not UTF-8" in binary and "write_file" in binary
    assert "refused by the bus" in outside and "refused by the bus" in traversal
    assert proj.as_role("viewer").read("task/description.md") == "Classify iris flowers.\n"


# -- search_files ----------------------------------------------------------------------

def test_search_files_finds_fixed_strings_and_regexes_in_readable_files(bus, proj):
    proj.as_role("system").write("submission/submission.csv", "id,x = 1\n", summary="not the coder's to read")
    fixed, rx, folder, caseless = results_of(bus, [
        ("search_files", {"pattern": "x = 1"}),
        ("search_files", {"pattern": r"^def \w+\(\):", "regex": True}),
        ("search_files", {"pattern": "iris", "folder": "task"}),
        ("search_files", {"pattern": "IRIS", "ignore_case": True, "max_matches": 1}),
    ])
    assert fixed.splitlines()[:2] == ["code/train.py:4:     x = 1", "code/train.py:8:     x = 1"]
    assert "submission" not in fixed  # the coder may not read it: not searched
    assert rx.splitlines()[:2] == ["code/train.py:3: def main():", "code/train.py:7: def other():"]
    assert folder.splitlines()[0] == "task/description.md:1: Classify iris flowers."
    assert caseless.count("iris") == 1 and "stopped at 1 matches" in caseless


def test_search_files_skips_binary_and_non_utf8_files_and_says_so(bus, proj):
    proj.as_role("coder", "coder-0").write("code/model.pkl", b"\x80\x04 x = 1 \x00\x00", summary="a pickle")
    proj.as_role("coder", "coder-0").write("code/latin.py", "x = 1  # caf\xe9\n".encode("latin-1"), summary="latin-1")
    [out] = results_of(bus, [("search_files", {"pattern": "x = 1", "folder": "code"})])
    assert "code/latin.py:1: x = 1  # caf\ufffd" in out and "model.pkl" not in out.split("(searched")[0]
    assert "1 binary" in out


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
def test_a_regex_bomb_is_stopped_and_bad_patterns_are_the_models_error(bus, proj):
    proj.as_role("coder", "coder-0").write("code/a.txt", "a" * 40 + "!\n", summary="a's")
    t0 = time.monotonic()
    bomb, bad, empty, huge, multi, limit = results_of(bus, [
        ("search_files", {"pattern": "(a+)+$", "regex": True, "folder": "code"}),
        ("search_files", {"pattern": "([unclosed", "regex": True}),
        ("search_files", {"pattern": ""}),
        ("search_files", {"pattern": "x" * 5000}),
        ("search_files", {"pattern": "a\nb"}),
        ("search_files", {"pattern": "x", "max_matches": 100000}),
    ])
    assert "ran past 5 s" in bomb and "simpler pattern" in bomb
    assert time.monotonic() - t0 < 30
    assert "not a valid regular expression" in bad and "`pattern` is empty" in empty
    assert "at most 500 characters" in huge and "one line" in multi and "between 1 and 200" in limit


def test_search_files_refuses_traversal_and_does_not_search_transcripts_unless_asked(bus, proj):
    [up, root] = results_of(bus, [
        ("search_files", {"pattern": "x", "folder": "../../operator"}),
        ("search_files", {"pattern": "Classify iris"}),
    ])
    assert up.startswith("ERROR (refused by the bus)")
    assert "logs/llm" not in root  # the agent's own transcripts hold every earlier prompt


# -- wait_for_runs ---------------------------------------------------------------------

def _request(proj, name, subtask, instance="experimenter-s0"):
    proj.as_role("experimenter", instance).record("run_requested", f"{name}: python x.py", run=name, subtask=subtask)


def test_wait_for_runs_answers_ended_queued_and_unknown_runs_at_once(bus, proj):
    system = proj.as_role("system", "run")
    _request(proj, "lr-1", "s0")
    system.record("dispatch", "lr-1", run="lr-1")
    record_result(system, RunResult(id="lr-1", status="ok", duration_s=3.5, metrics={"cv_score": 0.91}))
    _request(proj, "lr-2", "s0")
    record_result(system, RunResult(id="lr-2", status="failed", reason="exit code 1; see output.log", duration_s=1,
                                    output_tail="Traceback ...\nKeyError: 'species'\n"))
    _request(proj, "rf-1", "s1", "experimenter-s1")  # asked for, not dispatched (no orchestrator here)
    t0 = time.monotonic()
    mine, named = results_of(bus, [("wait_for_runs", {"timeout_s": 0}), ("wait_for_runs", {"runs": ["lr-2", "nope"]})],
                             role="experimenter")
    assert time.monotonic() - t0 < 10  # nothing under way in the second call: no waiting
    lines = mine.splitlines()
    assert lines[0] == "lr-1: ok in 3.5 s, cv_score=0.91"
    assert lines[1].startswith("lr-2: failed in 1.0 s, no metrics; exit code 1") and "KeyError: 'species'" in mine
    assert "rf-1: queued: asked for, not dispatched yet" in mine and "1 still under way" in mine
    assert named.splitlines()[-1] == "nope: no such run (launch_experiment asks for one)"


def test_wait_for_runs_does_not_wait_for_withdrawn_runs_nor_past_a_pause(bus, proj):
    system = proj.as_role("system", "run")
    _request(proj, "w-1", "s0")
    system.record("dispatch", "w-1", run="w-1")
    system.record("run_withdrawn", "w-1: not started", run="w-1")
    _request(proj, "q-1", "s0")  # queued: waited for, until the pause
    system.record("pause_requested", "paused by `aisci pause`")
    t0 = time.monotonic()
    [out] = results_of(bus, [("wait_for_runs", {"timeout_s": 600})], role="experimenter")
    assert time.monotonic() - t0 < 60  # the pause ends the wait, not the 600 s
    assert "w-1: withdrawn at a pause before it started: dispatched again when the project resumes" in out
    assert "q-1: queued" in out and "the project is asked to pause; 1 still under way" in out


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
def test_wait_for_runs_waits_for_a_running_run_no_longer_than_asked_and_rejects_bad_arguments(bus, proj):
    _request(proj, "slow", "s0")
    proj.as_role("system", "run").record("experiment_start", "slow", run="slow")
    t0 = time.monotonic()
    waited, bad_list, bad_time = results_of(bus, [
        ("wait_for_runs", {"runs": ["slow"], "timeout_s": 2}),
        ("wait_for_runs", {"runs": "slow"}),
        ("wait_for_runs", {"timeout_s": 100000}),
    ], role="experimenter")
    assert 1.5 < time.monotonic() - t0 < 20
    assert waited.startswith("slow: running") and "1 still under way" in waited
    assert "list of 1 to 50 run names" in bad_list and "0 to 900 seconds" in bad_time


@pytest.mark.slow  # 2-7 s of waiting on timeouts or restarts; the fast subset stays under 2 min
def test_wait_for_runs_stops_at_the_subtasks_deadline(bus, proj):
    _request(proj, "slow", "s0")
    proj.as_role("system", "run").record("experiment_start", "slow", run="slow")
    llm = ScriptedLLM([reply(calls=[("wait_for_runs", {"timeout_s": 600})]), reply(calls=[("finish", {"summary": "ok"})])])
    t0 = time.monotonic()
    Agent(bus, llm).run("iris", Subtask(id="s1", role="experimenter", goal="w", deadline=time.time() + 2))
    assert time.monotonic() - t0 < 15


# -- the text protocol and the roles ------------------------------------------------------

def test_the_new_tools_work_as_json_in_the_text_and_are_listed_for_text_servers(bus, proj):
    llm = ScriptedLLM([reply(text='Let me look. {"tool": "search_files", "arguments": {"pattern": "def main"}} '
                                  '{"tool": "edit_file", "arguments": {"path": "code/train.py", "old": "import sys\\n", '
                                  '"new": "import os\\n"}}'),
                       reply(text='{"tool": "finish", "arguments": {"summary": "done"}}')])
    result = Agent(bus, llm, text_tools=True).run("iris", Subtask(id="s1", role="coder", goal="w"))
    assert result.status == "finished"
    seen = llm.requests[1].messages[-1]["content"]
    assert "code/train.py:3: def main():" in seen and "edited code/train.py at line 1" in seen
    listing = tool_listing([SCHEMAS[n] for n in ("run", "edit_file", "search_files", "wait_for_runs")])
    assert "- run(command, timeout_s?)" in listing and "- edit_file(path, old, new, summary?)" in listing
    assert "- wait_for_runs(runs?, timeout_s?)" in listing
    assert "edit_file" in llm.requests[0].messages[0]["content"]  # the system prompt lists them


def test_without_an_executor_no_role_is_offered_run(bus, proj):
    llm = ScriptedLLM([reply(calls=[("run", {"command": "true"})]), reply(calls=[("finish", {"summary": "ok"})])])
    Agent(bus, llm).run("iris", Subtask(id="s1", role="coder", goal="w"))
    assert "run" not in [t["function"]["name"] for t in llm.requests[0].tools]
    assert "unknown tool 'run'" in llm.requests[1].messages[-1]["content"]
