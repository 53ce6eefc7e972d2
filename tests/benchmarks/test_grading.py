"""Medals as MLE-bench computes them, on leaderboards of every size class; grading the
shipped tasks, valid and invalid submissions."""

import shutil
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.mlebench import medals
from benchmarks.mlebench.task import InvalidTask, Task, shipped_tasks


@pytest.mark.parametrize(
    "n, positions",
    [(1, (1, 1, 1)), (10, (1, 2, 4)), (99, (9, 19, 39)), (100, (10, 20, 40)), (150, (10, 30, 60)),
     (249, (10, 49, 99)), (250, (10, 50, 100)), (500, (11, 50, 100)), (999, (11, 50, 100)),
     (1000, (12, 50, 100)), (2000, (14, 100, 200))],
)
def test_threshold_positions_by_size_class(n, positions):
    assert medals.medal_positions(n) == positions


@pytest.mark.parametrize("n", [10, 150, 500, 2000])
@pytest.mark.parametrize("lower", [False, True])
def test_medals_on_each_size_class(n, lower):
    # Best first: n, n-1, ..., 1 when higher is better; 1, 2, ..., n when lower is.
    board = [float(i + 1) for i in range(n)] if lower else [float(n - i) for i in range(n)]
    gold_p, silver_p, bronze_p = medals.medal_positions(n)
    at = lambda p: board[p - 1]  # noqa: E731
    step = -0.5 if not lower else 0.5  # half a place worse
    r = medals.rank(at(gold_p), board, lower)
    assert (r.medal, r.lower_is_better, r.gold_threshold) == ("gold", lower, at(gold_p))
    assert medals.rank(at(gold_p) + step, board, lower).medal == "silver"
    assert medals.rank(at(silver_p), board, lower).medal == "silver"
    assert medals.rank(at(silver_p) + step, board, lower).medal == "bronze"
    assert medals.rank(at(bronze_p), board, lower).medal == "bronze"
    worse = medals.rank(at(bronze_p) + step, board, lower)
    assert worse.medal == "none" and not worse.any_medal
    median = (n + 1) / 2
    assert worse.median_threshold == median
    assert medals.rank(median, board, lower).above_median is False  # strictly better than the median
    assert medals.rank(median + (-0.5 if lower else 0.5), board, lower).above_median is True
    assert medals.rank(None, board, lower).medal == "none" and not medals.rank(None, board, lower).above_median


def test_the_shipped_tasks_grade_valid_and_perfect_submissions(tmp_path):
    tasks = shipped_tasks()
    assert set(tasks) == {"breast-cancer", "digits", "diabetes", "docstrings", "glyphs"}
    kinds = {Task(p).kind for p in tasks.values()}
    assert kinds == {"classification", "regression"}
    for task_id, path in tasks.items():
        task = Task(path)
        sample = task.grade(task.public_dir / "sample_submission.csv")
        assert sample.valid_submission and not sample.any_medal and not sample.above_median, task_id
        perfect = tmp_path / f"{task_id}.csv"
        shutil.copy(task.private_dir / "answers.csv", perfect)
        graded = task.grade(perfect)
        assert graded.valid_submission and graded.gold_medal and graded.any_medal, (task_id, graded)
        assert graded.competition_id == task_id and graded.is_lower_better == (
            task.metric.name in ("root-mean-squared-error", "multi-class-log-loss"))
        board = pd.read_csv(path / "leaderboard.csv")
        assert len(board) >= 40 and list(board.score) == sorted(board.score, reverse=not graded.is_lower_better)


def test_invalid_submissions_score_nothing(tmp_path):
    task = Task(shipped_tasks()["digits"])
    answers = pd.read_csv(task.private_dir / "answers.csv")
    cases = {
        "missing column": answers.rename(columns={"target": "label"}),
        "must be exactly": answers.iloc[:-1],
        "appears more than once": pd.concat([answers.iloc[:-1], answers.iloc[:1]]),
        "finite numbers": answers.assign(target=None),
    }
    for needle, frame in cases.items():
        path = tmp_path / "s.csv"
        frame.to_csv(path, index=False)
        grade = task.grade(path)
        assert grade.score is None and not grade.valid_submission and not grade.any_medal, needle
        assert needle in grade.reason, (needle, grade.reason)
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00garbage")
    assert not task.grade(tmp_path / "bad.csv").valid_submission
    missing = task.grade(tmp_path / "missing.csv")
    assert missing.reason == "no submission file" and not missing.submission_exists
    with pytest.raises(InvalidTask, match="not a task folder"):
        Task(tmp_path)


def test_the_leaderboard_file_order_does_not_decide_the_direction():
    """The same scores, best first or worst first: the same medals (the direction is
    the metric's). Before, a leaderboard sorted the other way flipped every medal."""
    board = [float(i) for i in range(1, 21)]  # RMSE-like: 1 is best
    assert medals.rank(1.0, board, lower=True).medal == medals.rank(1.0, board[::-1], lower=True).medal == "gold"
    assert medals.rank(20.0, board[::-1], lower=True).medal == "none"


def _submit(tmp_path, task, frame):
    path = tmp_path / "s.csv"
    frame.to_csv(path, index=False)
    return task.grade(path)


def test_labels_are_compared_as_values_not_spellings(tmp_path):
    """The issue's example: digits labels written as 6.0 graded as accuracy 0.0, valid,
    with no reason. Now 6.0 is the class 6; 6.5 and 'six' are refused with a reason."""
    task = Task(shipped_tasks()["digits"])
    answers = pd.read_csv(task.private_dir / "answers.csv")
    as_floats = _submit(tmp_path, task, answers.assign(target=answers.target.astype(float)))
    assert as_floats.valid_submission and as_floats.score == 1.0, as_floats
    as_text = _submit(tmp_path, task, answers.assign(target=answers.target.astype(str), id=answers.id.astype(float)))
    assert as_text.valid_submission and as_text.score == 1.0, as_text
    half = _submit(tmp_path, task, answers.assign(target=answers.target + 0.5))
    assert not half.valid_submission and "whole-number labels" in half.reason and half.score is None
    words = _submit(tmp_path, task, answers.assign(target="six"))
    assert not words.valid_submission and "finite numbers" in words.reason


def test_non_finite_predictions_are_invalid(tmp_path):
    for name in ("diabetes", "breast-cancer"):
        task = Task(shipped_tasks()[name])
        answers = pd.read_csv(task.private_dir / "answers.csv").astype({"target": float})
        for bad in (float("nan"), float("inf"), float("-inf")):
            frame = answers.copy()
            frame.loc[3, "target"] = bad
            grade = _submit(tmp_path, task, frame)
            assert not grade.valid_submission and grade.score is None, (name, bad, grade)
            assert "finite" in grade.reason, grade.reason


def test_a_task_folder_is_checked_whole_before_anything_runs(tmp_path):
    source = shipped_tasks()["breast-cancer"]
    for missing, needle in (("description.md", "description.md"), ("prepared/private/answers.csv", "answers.csv"),
                            ("prepared/public/sample_submission.csv", "sample_submission.csv")):
        folder = tmp_path / missing.replace("/", "_")
        shutil.copytree(source, folder)
        (folder / missing).unlink()
        with pytest.raises(InvalidTask, match=needle):
            Task(folder)
    no_board = tmp_path / "no-board"
    shutil.copytree(source, no_board)
    (no_board / "leaderboard.csv").unlink()
    task = Task(no_board)
    graded = task.grade(task.private_dir / "answers.csv")
    assert graded.valid_submission and not graded.any_medal and graded.gold_threshold is None
    assert graded.leaderboard_size == 0
    (no_board / "leaderboard.csv").write_text("team,score\na,high\n")
    with pytest.raises(InvalidTask, match="score"):
        Task(no_board)


def test_the_answers_are_never_package_data():
    """A non-editable install puts package data in site-packages, which every run sees:
    the globs must take the public files and nothing of prepared/private."""
    root = Path(__file__).resolve().parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["benchmarks.mlebench"]
    installed = {p for g in globs for p in (root / "benchmarks" / "mlebench").glob(g) if p.is_file()}
    assert not [p for p in installed if "private" in p.parts]
    assert {"train.csv", "test.csv", "sample_submission.csv"} <= {p.name for p in installed if "public" in p.parts}
    assert any(p.suffix == ".png" and p.parent.name == "train" for p in installed)  # image folders are public data


def test_a_task_without_its_answers_is_refused_before_it_runs(tmp_path):
    """What a non-editable install of the shipped tasks has: no prepared/private. The
    task is refused when opened (before anything runs), saying why; a task whose
    answers vanish after it was opened grades as "not graded", never a crash."""
    task_dir = tmp_path / "diabetes"
    shutil.copytree(shipped_tasks()["diabetes"], task_dir)
    task = Task(task_dir)
    shutil.rmtree(task_dir / "prepared" / "private")
    grade = task.grade(task.public_dir / "sample_submission.csv")
    assert not task.has_answers and grade.score is None and not grade.valid_submission and not grade.any_medal
    assert grade.reason.startswith("not graded") and "answers" in grade.reason
    with pytest.raises(InvalidTask, match="answers.csv"):
        Task(task_dir)


def test_a_grade_without_a_leaderboard_says_so_not_medal_none():
    from benchmarks.mlebench.report import CompetitionReport
    bare = CompetitionReport(competition_id="x", score=0.3, submission_exists=True, valid_submission=True,
                             is_lower_better=True)
    assert bare.standing == "no leaderboard, so no medal"
    ranked = CompetitionReport(competition_id="x", score=0.3, submission_exists=True, valid_submission=True,
                               is_lower_better=True, silver_medal=True, above_median=True, leaderboard_size=9)
    assert ranked.standing == "medal silver, above median True"
