"""The judge protocol (PaperBench's SimpleJudge) and the reproduction step on the shipped paper:
the reference reproduction runs here, the scripted judge scores it, an empty submission
scores 0, and the model's answers are validated where they enter."""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from benchmarks.paperbench import (
    Limits,
    Paper,
    ScriptedJudgeModel,
    judge_submission,
    run_reproduction,
    shipped_papers,
)
from benchmarks.paperbench.judge import GRADE_SCHEMA, SimpleJudge

REFERENCE = Path(__file__).parent / "data" / "paperbench" / "reference_submission"
SHIPPED = "scaling-knn-vs-forest"
# reproduce.sh calls python3: the one running the tests, which has scikit-learn.
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture(scope="module")
def paper():
    return Paper(shipped_papers()[SHIPPED])


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    """The reference submission after its reproduction (about 10 s on 2 cores)."""
    sub = tmp_path_factory.mktemp("reproduced") / "submission"
    shutil.copytree(REFERENCE, sub)
    outcome = run_reproduction(sub, timeout_s=600, env=ENV)
    return sub, outcome


class Recording:
    """Wraps a model and keeps every call's messages (the model stands in for an LLM)."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __call__(self, messages, schema):
        self.calls.append((messages, schema))
        return self.model(messages, schema)


@pytest.mark.slow
def test_the_reference_reproduction_runs_and_scores_full_marks_but_the_zero_weight_appendix(paper, reproduced):
    sub, outcome = reproduced
    assert outcome.repro_script_exists and outcome.exit_code == 0 and not outcome.timed_out
    log = (sub / "reproduce.log").read_text()
    assert "wine knn scaled accuracy" in log and (sub / "results.csv").is_file()
    assert (sub / "reproduce.log.creation_time").read_text().strip().isdigit()
    grade = judge_submission(paper, sub, ScriptedJudgeModel())
    assert grade.num_leaf_nodes == 23 and grade.num_invalid_leaf_nodes == 0
    appendix = grade.graded_task_tree.sub_tasks[-1]
    assert appendix.weight == 0 and appendix.score == 0.0  # not reproduced, and it counts for nothing
    assert grade.score == 1.0
    by_category = {leaf.task_category for leaf in grade.graded_task_tree.leaves() if leaf.score == 1}
    assert by_category == {"Code Development", "Code Execution", "Result Analysis"}
    json.dumps(grade.to_dict())


@pytest.mark.slow
def test_a_submission_that_never_scales_loses_the_scaling_criteria(paper, tmp_path):
    """The scripted judge reads the code and the outputs: drop the scaler and the k-NN gains
    vanish from the results, so those leaves fail; the rest still pass."""
    sub = tmp_path / "submission"
    shutil.copytree(REFERENCE, sub)
    code = (sub / "scaling.py").read_text()
    (sub / "scaling.py").write_text(code.replace("make_pipeline(StandardScaler(), model) if scaled else model", "model")
                                    .replace("from sklearn.preprocessing import StandardScaler\n", ""))
    assert run_reproduction(sub, timeout_s=600, env=ENV).exit_code == 0
    grade = judge_submission(paper, sub, ScriptedJudgeModel())
    failed = {leaf.requirements.split(" (")[0] for leaf in grade.graded_task_tree.leaves() if leaf.score == 0}
    assert any("StandardScaler" in r for r in failed)
    assert any("gain from standardization on Wine" in r for r in failed)
    assert 0.3 < grade.score < 0.9


def test_an_empty_submission_scores_zero(paper, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    outcome = run_reproduction(empty, timeout_s=10, env=ENV)
    assert not outcome.repro_script_exists and (empty / "reproduce.log").read_text().startswith("reproduce.sh not found")
    for code_only in (False, True):
        grade = judge_submission(paper, empty, ScriptedJudgeModel(), code_only=code_only)
        assert grade.score == 0.0 and grade.num_invalid_leaf_nodes == 0


def test_code_dev_grades_the_code_without_running_it(paper, tmp_path):
    """PaperBench Code-Dev: only the 10 Code Development leaves, and neither reproduce.sh
    nor reproduce.log is shown (a submission that never ran still earns them)."""
    sub = tmp_path / "submission"
    shutil.copytree(REFERENCE, sub)
    model = Recording(ScriptedJudgeModel())
    grade = judge_submission(paper, sub, model, code_only=True)
    assert grade.code_only and grade.num_leaf_nodes == 10 and grade.score == 1.0
    texts = [m["content"] for messages, _ in model.calls for m in messages]
    assert not any("<reproduce.sh>" in t or "<reproduce.log>" in t for t in texts)
    assert all(schema is GRADE_SCHEMA or (schema["properties"]["files"]["maxItems"] == 10 and set(
        schema["properties"]["files"]["items"]["enum"]) <= {p.relative_to(sub).as_posix() for p in sub.rglob("*")})
        for _, schema in model.calls)  # a selection names at most 10 of the listed files


def test_what_each_category_is_shown(paper, tmp_path):
    """Code Development: files and reproduce.sh; Code Execution: also reproduce.log; Result
    Analysis with nothing written by the reproduction: 0 without a call."""
    sub = tmp_path / "submission"
    shutil.copytree(REFERENCE, sub)
    (sub / "reproduce.log").write_text("wine knn raw accuracy 0.66\n")
    (sub / "reproduce.log.creation_time").write_text(f"{int((sub / 'scaling.py').stat().st_mtime) + 3600}\n")
    model = Recording(ScriptedJudgeModel())
    grade = judge_submission(paper, sub, model)
    grading = [msgs for msgs, schema in model.calls if schema is GRADE_SCHEMA]
    category = lambda msgs: msgs[-2]["content"].split("<category>")[1].split("</category>")[0]
    for msgs in grading:
        text = "\n".join(m["content"] for m in msgs)
        assert ("<reproduce.log>" in text) == (category(msgs) != "Code Development") and "<reproduce.sh>" in text
        assert "Clarifications" in text and "Table 1" in text and "leaks test statistics" in text  # both addenda
    assert {category(m) for m in grading} == {"Code Development", "Code Execution"}
    ra = [leaf for leaf in grade.graded_task_tree.leaves() if leaf.task_category == "Result Analysis"]
    assert ra and all(leaf.score == 0 and "no reproduced results" in leaf.explanation for leaf in ra)


class Answers:
    """A model that picks files like the scripted one and grades with canned texts in turn."""

    def __init__(self, *answers, pick=None):
        self.answers, self.pick, self.grading_calls = list(answers), pick, []

    def __call__(self, messages, schema):
        if "files" in schema["properties"]:
            return json.dumps({"files": self.pick}) if self.pick is not None else ScriptedJudgeModel()(messages, schema)
        self.grading_calls.append(messages)
        answer = self.answers[min(len(self.grading_calls) - 1, len(self.answers) - 1)]
        if isinstance(answer, Exception):
            raise answer
        return answer


def one_leaf(paper, sub, model, **kw):
    grade = judge_submission(paper, sub, model, code_only=True, **kw)
    return grade.graded_task_tree.leaves()[0], grade


@pytest.mark.parametrize("bad", ["not json", '{"score": 2, "explanation": "x"}', '{"score": 1}',
                                 '{"score": true, "explanation": "x"}', '{"score": "1", "explanation": "x"}',
                                 '{"score": 1, "explanation": ""}', '{"score": 1, "explanation": "x", "extra": 1}'])
def test_an_invalid_answer_is_retried_once_with_the_reason_then_scored_zero(paper, tmp_path, bad):
    sub = tmp_path / "s"
    shutil.copytree(REFERENCE, sub)
    model = Answers(bad, '{"score": 1, "explanation": "second try"}')
    leaf, _ = one_leaf(paper, sub, model)
    assert leaf.score == 1 and leaf.explanation == "second try" and leaf.valid_score
    retry = model.grading_calls[1]
    assert retry[-2] == {"role": "assistant", "content": bad} and "invalid" in retry[-1]["content"]
    twice = Answers(bad)
    leaf, grade = one_leaf(paper, sub, twice)
    assert leaf.score == 0 and not leaf.valid_score and "invalid twice" in leaf.explanation
    assert grade.num_invalid_leaf_nodes == grade.num_leaf_nodes == 10 and grade.score == 0.0
    assert len(twice.grading_calls) == 2 * 10  # two tries per leaf, no more


def test_a_failing_model_call_scores_the_leaf_zero_and_invalid(paper, tmp_path):
    sub = tmp_path / "s"
    shutil.copytree(REFERENCE, sub)
    leaf, _ = one_leaf(paper, sub, Answers(ConnectionError("endpoint down")))
    assert leaf.score == 0 and not leaf.valid_score and "ConnectionError: endpoint down" in leaf.explanation


def test_only_listed_files_are_read_and_reads_are_capped(paper, tmp_path):
    """The model is untrusted: a path outside the listing (a parent folder, a link, a skipped
    folder) is never read; a file is read up to max_file_bytes; at most max_selected_files."""
    (tmp_path / "secret.py").write_text("SECRET = 1\n")
    sub = tmp_path / "s"
    sub.mkdir()
    (sub / "big.py").write_text("x = 1\n" * 10_000)
    for i in range(5):
        (sub / f"m{i}.py").write_text(f"MODULE_{i} = {i}\n")
    (sub / "link.py").symlink_to(tmp_path / "secret.py")
    (sub / ".venv").mkdir()
    (sub / ".venv" / "lib.py").write_text("SECRET = 2\n")
    pick = ["../secret.py", "link.py", ".venv/lib.py", "/etc/passwd", "./big.py", "m0.py", "m1.py", "m2.py"]
    model = Answers('{"score": 0, "explanation": "x"}', pick=pick)
    leaf, _ = one_leaf(paper, sub, model, limits=Limits(max_file_bytes=1000, max_selected_files=3))
    assert leaf.judge_metadata["files_shown"] == ["big.py", "m0.py", "m1.py"]
    shown = model.grading_calls[0][-3]["content"]
    assert "SECRET" not in shown and "root:" not in shown and "MODULE_2" not in shown
    body = shown.split('<file path="big.py">\n')[1].split("\n</file>")[0]
    assert len(body) == 1000


def test_the_reproduction_is_killed_at_its_time_limit(tmp_path):
    sub = tmp_path / "s"
    sub.mkdir()
    (sub / "reproduce.sh").write_text("echo started\n(sleep 60; echo child-survived > late.txt) &\nsleep 60\n")
    outcome = run_reproduction(sub, timeout_s=1, env=ENV)
    assert outcome.timed_out and outcome.exit_code is None
    log = (sub / "reproduce.log").read_text()
    assert log.startswith("started") and "killed after the 1 s limit" in log


def test_a_linked_folder_leading_outside_is_not_read(paper, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "leak.py").write_text("SECRET = 3\n")
    sub = tmp_path / "s"
    sub.mkdir()
    (sub / "main.py").write_text("x = 1\n")
    (sub / "lib").symlink_to(outside, target_is_directory=True)
    model = Answers('{"score": 0, "explanation": "x"}', pick=["lib/leak.py", "main.py"])
    leaf, _ = one_leaf(paper, sub, model)
    assert leaf.judge_metadata["files_shown"] == ["main.py"] and "SECRET" not in model.grading_calls[0][-3]["content"]


def test_the_log_is_reduced_and_capped(tmp_path):
    from benchmarks.paperbench import Submission
    from benchmarks.paperbench.submission import reduce_log

    lines = ["start"] + [f"epoch {i} loss {1 / (i + 1):.4f} at 2026-01-01T00:00:{i % 60:02d}Z" for i in range(500)] + ["done"]
    assert reduce_log("\n".join(lines)).splitlines() == ["start", lines[1], "  (repeated 500 times)", "done"]
    sub = tmp_path / "s"
    sub.mkdir()
    (sub / "reproduce.log").write_text("\n".join(f"line {chr(97 + i % 26)} {'x' * 50}" for i in range(5000)))
    log = Submission(sub, Limits(max_log_chars=1000)).reproduce_log()
    assert log.startswith("line a") and len(log) < 1100 and log.endswith("over the judge's cap)")


def test_results_shipped_with_a_future_date_do_not_count_as_reproduced(paper, tmp_path):
    """The dates are the runner's: a submission whose results.csv (and creation_time) claim
    to be newer than the run still has no reproduced results if reproduce.sh wrote none."""
    sub = tmp_path / "s"
    shutil.copytree(REFERENCE, sub)
    (sub / "reproduce.sh").write_text("echo nothing to run\n")
    (sub / "results.csv").write_text("dataset,model,scaling,accuracy_mean\nwine,knn,gain,0.30\n")
    (sub / "reproduce.log.creation_time").write_text("0\n")
    future = 4_000_000_000
    os.utime(sub / "results.csv", (future, future))
    assert run_reproduction(sub, timeout_s=30, env=ENV).exit_code == 0
    assert int((sub / "reproduce.log.creation_time").read_text()) > 0
    grade = judge_submission(paper, sub, ScriptedJudgeModel())
    ra = [leaf for leaf in grade.graded_task_tree.leaves() if leaf.task_category == "Result Analysis"]
    assert all(leaf.score == 0 and "no reproduced results" in leaf.explanation for leaf in ra)


def test_a_small_judge_window_gets_prompts_cut_to_fit_with_the_criterion_whole(paper, tmp_path):
    """A judge model with a small context (the packaged SmolLM2 at 4096 tokens): every
    prompt fits in max_prompt_chars, the files, log and paper are cut (each keeping its head,
    marked), and what is judged (the criterion, the question, the closing tags) stays whole."""
    sub = tmp_path / "submission"
    shutil.copytree(REFERENCE, sub)
    (sub / "reproduce.log").write_text("wine knn raw accuracy 0.66\n" * 2000)
    (sub / "notes.md").write_text("# notes\n" + "a long note line\n" * 3000)
    limit = 9_000
    model = Recording(ScriptedJudgeModel())
    grade = SimpleJudge(paper, sub, model, max_prompt_chars=limit, max_answer_chars=2_000).grade()
    assert grade.num_leaf_nodes == 23 and model.calls
    cut = 0
    for messages, schema in model.calls:
        text = "".join(m["content"] for m in messages)
        assert len(text) <= limit, len(text)
        cut += "(cut here to fit the judge model's context window)" in text
        assert "</paper>" in text and "</criterion>" in text
        if "score" in schema["properties"]:  # a verdict: its explanation capped under the answer's room
            assert "Answer with JSON" in text and "<category>" in text and "</reproduce.sh>" in text
            assert schema["properties"]["explanation"]["maxLength"] == 1_900 and "maxLength" not in \
                GRADE_SCHEMA["properties"]["explanation"]
    assert cut >= len(model.calls) // 2
    # Unbounded (the default): nothing is cut.
    model = Recording(ScriptedJudgeModel())
    judge_submission(paper, sub, model)
    assert not any("(cut here to fit" in m["content"] for messages, _ in model.calls for m in messages)
