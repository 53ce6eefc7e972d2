"""check_submission (the grader's validity check against the task's public sample
submission) and the writer's finish that it gates: the real bus, the real agent loop,
the scripted model (no Ray here)."""

import json
import os
import time

import pytest

from actors.agent import Agent, Subtask
from actors.baseline import BaselineLLM
from actors.llm.scripted import ScriptedLLM, reply
from actors.roles import ROLES
from actors.submission import MAX_EXTRA_COLUMNS, check_on_bus
from actors.tools import FormatError, ToolBox
from benchmarks.mlebench.task import Task, shipped_tasks

SAMPLE = "id,target\n1,0\n2,0\n3,0\n"
GOOD = "id,target\n3,1\n1,0\n2,1\n"


def _task(proj, sample=SAMPLE, sample_name="sample_submission.csv", **spec):
    """The task's public part as cluster.tasks.import_task writes it (system-written, read-only to agents)."""
    system = proj.as_role("system", "import")
    system.write("task/description.md", "Predict the target.\n")
    system.write(f"task/{sample_name}", sample)
    system.write("task/task.json", json.dumps({
        "competition_id": "toy", "metric": "accuracy", "is_lower_better": False, "predicts": "label",
        "kind": "classification", "id_column": "id", "target_columns": ["target"],
        "sample_submission": sample_name, **spec}))


@pytest.fixture
def proj(bus):
    p = bus.create_project("toy")
    _task(p)
    return p


def _check(proj, content: str | bytes, role="writer", path="submission/submission.csv") -> str:
    proj.as_role("system", "t").write(path, content)
    return ToolBox(proj.as_role(role, f"{role}-t"), ROLES[role].tools).call("check_submission", {"path": path})


def test_a_valid_submission_says_its_rows_and_columns(proj):
    assert _check(proj, GOOD) == "valid: 3 rows, columns id, target"
    # The default path is the project's submission.
    assert ToolBox(proj.as_role("writer", "w"), ROLES["writer"].tools).call("check_submission", {}) == \
        "valid: 3 rows, columns id, target"


@pytest.mark.parametrize("content, says", [
    ("id,target\n1,0\n2,1\n", "got 2 rows, 1 ids missing"),                          # missing id
    ("id,target\n1,0\n2,1\n3,1\n", None),                                            # (control: valid)
    ("id,target\n1,0\n2,1\n9,1\n", "1 unknown ids (e.g. 9) and 1 missing"),          # extra (unknown) id
    ("id,target\n1,0\n1,1\n3,1\n", "'id' 1 appears more than once"),                 # duplicate id
    ("id,label\n1,0\n2,1\n3,1\n", "missing column(s) ['target']"),                   # wrong columns
    ("idx,target\n1,0\n2,1\n3,1\n", "missing column(s) ['id']"),
    ("id,target\n1,0\n2,\n3,1\n", "row 2 holds nan"),                                # NaN (an empty cell)
    ("id,target\n1,0\n2,nan\n3,1\n", "row 2 holds nan"),
    ("id,target\n1,0\n2,inf\n3,1\n", "row 2 holds inf"),                             # inf
    ("id,target\n1,0\n2,1.5\n3,1\n", "whole-number labels"),                         # a label that is no label
    ("id,target\n1,0\n2,1\n3,1\n4,0\n", "more than 3 data rows"),                    # wrong row count
    ("id,target\n", "has no rows"),
    ("", "the file is empty"),                                                       # unreadable
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    ('id,target\n"1,0\n', "not a readable CSV"),
    ("id,target\n1,0\n2,1,7,7\n3,1\n", "Expected 2 fields in line 3, saw 4"),
    (b"id,target\n1,\xff\xfe\n2,1\n3,1\n", "not UTF-8 text"),
])
def test_each_kind_of_invalid_submission_says_what_to_change(proj, content, says):
    out = _check(proj, content)
    if says is None:
        assert out.startswith("valid: 3 rows"), out
    else:
        assert out.startswith("invalid: ") and says in out, out


def test_probabilities_are_checked_by_the_metrics_rules(bus):
    proj = bus.create_project("auc")
    _task(proj, sample="id,target\n1,0.5\n2,0.5\n", metric="auc-roc", predicts="probability")
    assert _check(proj, "id,target\n1,0.2\n2,0.9\n").startswith("valid")
    assert "probabilities, in [0, 1]; row 2 holds 1.5 (clip to [0, 1])" in _check(proj, "id,target\n1,0.2\n2,1.5\n")
    assert "must hold finite numbers" in _check(proj, "id,target\n1,0.2\n2,high\n")


def test_a_lite_competition_is_checked_by_its_own_grader(bus):
    # spooky-author-identification: exact columns, each row's probabilities summing to one.
    proj = bus.create_project("spooky")
    _task(proj, sample="id,EAP,HPL,MWS\na,0.4,0.3,0.3\nb,0.4,0.3,0.3\n", competition_id="spooky-author-identification",
          metric="multi-class-log-loss", predicts="probability", target_columns=["EAP", "HPL", "MWS"])
    assert _check(proj, "id,EAP,HPL,MWS\nb,0.1,0.1,0.8\na,1,0,0\n").startswith("valid: 2 rows")
    assert "must sum to 1" in _check(proj, "id,EAP,HPL,MWS\nb,0.1,0.1,0.1\na,1,0,0\n")
    assert "unexpected column(s) ['text']" in _check(proj, "id,EAP,HPL,MWS,text\nb,0.1,0.1,0.8,x\na,1,0,0,y\n")


def test_a_sample_submission_named_otherwise_is_found(bus):
    proj = bus.create_project("named")
    _task(proj, sample_name="sampleSubmission.csv")
    assert _check(proj, GOOD).startswith("valid")
    # A task.json written before it named its sample: the one public file named like one.
    old = bus.create_project("old")
    _task(old, sample_name="sampleSubmission.csv")
    spec = json.loads(old.as_role("viewer").read("task/task.json"))
    del spec["sample_submission"]
    old.as_role("system", "import").write("task/task.json", json.dumps(spec))
    assert _check(old, GOOD).startswith("valid")


def test_a_task_without_a_public_sample_is_unchecked_not_invalid(bus):
    proj = bus.create_project("private-sample")
    _task(proj, sample_submission=None)
    out = _check(proj, GOOD)
    assert out.startswith("unchecked: ") and "columns id, target" in out


def test_the_shipped_tasks_task_json_names_its_public_sample():
    assert Task(shipped_tasks()["digits"]).summary()["sample_submission"] == "sample_submission.csv"


# -- untrusted input: bounded, never a crash -----------------------------------------------


@pytest.mark.parametrize("path, says", [
    ("../../etc/passwd", "'..' may not appear"),
    ("/etc/passwd", "absolute path"),
    ("submission", "there is no file submission"),           # a folder
    ("submission/none.csv", "there is no file submission/none.csv"),
    ("sub\x00mission.csv", "cannot read"),
])
def test_a_bad_path_is_a_clear_answer(proj, path, says):
    out = ToolBox(proj.as_role("writer", "w"), ROLES["writer"].tools).call("check_submission", {"path": path})
    assert out.startswith("invalid: ") and says in out, out


def test_a_path_outside_the_roles_scope_is_refused_by_the_bus(proj):
    proj.as_role("system", "t").write("report/predictions.csv", GOOD)
    out = ToolBox(proj.as_role("experimenter", "e"), ROLES["experimenter"].tools).call(
        "check_submission", {"path": "report/predictions.csv"})
    assert out.startswith("invalid: cannot read report/predictions.csv") and "experimenter" in out, out
    assert _check(proj, GOOD, role="experimenter", path="experiments/lr-1/submission.csv").startswith("valid")


def test_a_path_that_is_not_a_string_is_a_format_error(proj):
    with pytest.raises(FormatError, match="must be a string"):
        ToolBox(proj.as_role("writer", "w"), ROLES["writer"].tools).call("check_submission", {"path": 7})


def test_a_2_gb_file_is_refused_unread(proj):
    # A file on disk the index never sized (sparse: no disk used): the bus's size limit refuses it before a read.
    (proj.dir / "submission").mkdir(exist_ok=True)
    big = proj.dir / "submission" / "huge.csv"
    with open(big, "wb") as f:
        f.truncate(2 * 2**30)
    t0 = time.monotonic()
    out = _check_path(proj, "submission/huge.csv")
    assert out.startswith("invalid: cannot read") and "over the bus limit" in out, out
    assert time.monotonic() - t0 < 5
    os.unlink(big)


def _check_path(proj, path):
    return ToolBox(proj.as_role("writer", "w"), ROLES["writer"].tools).call("check_submission", {"path": path})


@pytest.mark.parametrize("header, says", [
    ("c," * 1_000_000 + "c", "header line is over 1 MiB"),                      # a million columns
    (",".join(f"c{i}" for i in range(MAX_EXTRA_COLUMNS + 10)), "columns; the sample submission has 2"),
])
def test_a_csv_with_huge_headers_is_refused_before_it_is_parsed(proj, header, says):
    t0 = time.monotonic()
    out = _check(proj, header + "\n" + "1," * 5 + "\n")
    assert out.startswith("invalid: ") and says in out, out
    assert time.monotonic() - t0 < 5


def test_many_rows_parse_no_further_than_the_sample(proj):
    out = _check(proj, "id,target\n" + "1,0\n" * 500_000)
    assert "more than 3 data rows" in out


# -- the writer's finish -----------------------------------------------------------------------


def _writer(bus, script, max_steps=None, project="toy"):
    llm = ScriptedLLM(script)
    result = Agent(bus, llm).run(project, Subtask(id="submit-1", role="writer", goal="Submit", max_steps=max_steps))
    return result, llm


def _tool_results(llm):
    return [m["content"] for m in llm.requests[-1].messages if m["role"] == "tool"]


def _run_wrote(proj, content=GOOD, run="lr-1"):
    proj.as_role("system", f"run-{run}").write(f"experiments/{run}/submission.csv", content)


def test_the_writers_finish_is_refused_while_invalid_then_accepted_after_a_fix(bus, proj):
    _run_wrote(proj, "id,target\n1,0\n2,1\n")  # a run that forgot an id
    _run_wrote(proj, GOOD, run="lr-2")
    result, llm = _writer(bus, [
        reply(calls=[("copy_file", {"src": "experiments/lr-1/submission.csv", "dst": "submission/submission.csv"})]),
        reply(calls=[("finish", {"summary": "submitted lr-1"})]),
        reply(calls=[("copy_file", {"src": "experiments/lr-2/submission.csv", "dst": "submission/submission.csv"})]),
        reply(calls=[("check_submission", {})]),
        reply(calls=[("finish", {"summary": "submitted lr-2"})]),
    ])
    assert (result.status, result.summary, result.steps) == ("finished", "submitted lr-2", 5)
    refused, check = _tool_results(llm)[1], _tool_results(llm)[3]
    assert refused.startswith("ERROR: finish refused") and "1 ids missing" in refused
    assert check == "valid: 3 rows, columns id, target"


def test_a_missing_submission_is_refused_while_a_run_wrote_one(bus, proj):
    _run_wrote(proj)
    result, llm = _writer(bus, [
        reply(calls=[("finish", {"summary": "done"})]),
        reply(calls=[("copy_file", {"src": "experiments/lr-1/submission.csv", "dst": "submission/submission.csv"})]),
        reply(calls=[("finish", {"summary": "submitted lr-1"})]),
    ])
    assert (result.status, result.summary) == ("finished", "submitted lr-1")
    refused = _tool_results(llm)[0]
    assert refused.startswith("ERROR: finish refused: there is no submission/submission.csv") and \
        "experiments/lr-1/submission.csv" in refused


def test_with_nothing_ever_run_the_writer_finishes_saying_no_submission(bus, proj):
    result, _ = _writer(bus, [reply(calls=[("finish", {"summary": "wrote the report"})])])
    assert result.status == "finished"
    assert result.summary == "no submission: no run wrote a submission.csv to put in place. wrote the report"


def test_with_bus_memory_off_the_writer_sees_no_run_and_finishes_saying_no_submission(bus, proj):
    # The ablation: the writer reads only task/ and its own files, so no run's predictions to copy.
    _run_wrote(proj)
    result = Agent(bus, ScriptedLLM([reply(calls=[("finish", {"summary": "done"})])]), bus_memory=False).run(
        "toy", Subtask(id="submit-1", role="writer", goal="Submit"))
    assert (result.status, result.summary) == ("finished", "no submission: no run wrote a submission.csv to put "
                                                           "in place. done")


def test_a_writer_that_never_fixes_it_ends_on_its_step_budget(bus, proj):
    proj.as_role("system", "t").write("submission/submission.csv", "id,target\n1,0\n")
    result, llm = _writer(bus, [reply(calls=[("finish", {"summary": "done"})]),
                                reply(calls=[("read_file", {"path": "task/description.md"})]),
                                reply(calls=[("finish", {"summary": "done, really"})])], max_steps=3)
    assert (result.status, result.summary) == ("budget", "stopped after 3 steps: budget spent")
    assert all(r.startswith("ERROR: finish refused") for r in _tool_results(llm)[::2])


def test_other_roles_finish_without_a_check(bus, proj):
    proj.as_role("system", "t").write("submission/submission.csv", "garbage")
    result = Agent(bus, ScriptedLLM([reply(calls=[("finish", {"summary": "ok"})])])).run(
        "toy", Subtask(id="e1", role="experimenter", goal="x"))
    assert (result.status, result.summary) == ("finished", "ok")


def test_the_roles_that_make_predictions_have_the_tool():
    have = {name for name, role in ROLES.items() if "check_submission" in role.tools}
    assert have == {"writer", "experimenter", "debugger"}
    assert [name for name, role in ROLES.items() if role.submits] == ["writer"]


def test_the_baseline_submits_checks_and_reports_the_check(bus, proj):
    _run_wrote(proj, GOOD, run="hgb-4")
    result = Agent(bus, BaselineLLM()).run("toy", Subtask(id="submit-1", role="writer", goal="Submit",
                                                          context='BASELINE: {"best": "hgb-4"}'))
    assert (result.status, result.summary) == ("finished", "submitted the predictions of hgb-4 "
                                                            "(valid: 3 rows, columns id, target)")


def test_the_baseline_with_invalid_best_predictions_ends_with_the_reason(bus, proj):
    _run_wrote(proj, "id,target\n1,0\n1,0\n3,1\n", run="hgb-4")
    result = Agent(bus, BaselineLLM()).run("toy", Subtask(id="submit-1", role="writer", goal="Submit",
                                                          context='BASELINE: {"best": "hgb-4"}'))
    assert result.status == "failed" and result.summary.startswith("repeated call") and "appears more than once" in \
        result.summary


def test_check_on_bus_returns_a_typed_outcome(proj):
    check = check_on_bus(proj.as_role("writer", "w"))
    assert (check.kind, check.valid) == ("missing", False)
    proj.as_role("system", "t").write("submission/submission.csv", GOOD)
    check = check_on_bus(proj.as_role("writer", "w"))
    assert (check.kind, check.rows, check.columns) == ("valid", 3, ["id", "target"])
