"""The report tells how the project went: direction, best run by that direction, the
stop reason, pauses and resumes, failed runs with their output, rounded scores, and a
plot drawn by a plotting library with each run labelled."""

from actors.runs import RunResult, record_result
from benchmarks.mlebench.report import CompetitionReport
from cluster.report import best_so_far, fmt_score, write_report


def _project_with_runs(bus, name, scores):
    proj = bus.create_project(name)
    system = proj.as_role("system", "test")
    system.record("decision", "step 1: try three models")
    for run, score in scores:
        record_result(system, RunResult(id=run, status="ok", duration_s=1.25, metrics={"cv_score": score}))
    return proj, system


def test_an_rmse_project_reports_its_lowest_score_as_best(bus):
    proj, system = _project_with_runs(bus, "rmse", [("ridge", 57.123456), ("forest", 53.98765), ("knn", 61.0)])
    text = write_report(proj, None, lower_is_better=True)
    assert "lower is better" in text
    assert "Runs: 3. Best cv score: **53.99**" in text  # the lowest, rounded to 4 significant digits
    assert "| forest | ok | 53.99 (best) |" in text
    assert "57.123456" not in text
    svg = proj.as_role("viewer").read("report/metric.svg")
    assert "<svg" in svg[:400] and "best so far" in svg
    assert all(name in svg for name in ("ridge", "forest", "knn"))  # each run is labelled


def test_a_higher_is_better_project_reports_its_highest(bus):
    proj, _ = _project_with_runs(bus, "acc", [("a", 0.91), ("b", 0.97333), ("c", 0.95)])
    grade = CompetitionReport(competition_id="digits", score=0.97333, submission_exists=True, valid_submission=True,
                              silver_medal=True, above_median=True, gold_threshold=0.99, silver_threshold=0.97,
                              bronze_threshold=0.95, median_threshold=0.9, is_lower_better=False,
                              metric="accuracy", leaderboard_size=10)
    text = write_report(proj, grade)
    assert "higher is better" in text and "| b | ok | 0.9733 (best) |" in text
    assert "digits, accuracy: **0.9733**" in text and "medal silver" in text


def test_failed_runs_pauses_and_the_stop_reason_are_in_the_report(bus):
    proj, system = _project_with_runs(bus, "mixed", [("good", 0.8)])
    record_result(system, RunResult(id="boom", status="failed", reason="exit code 1: see the output",
                                    output_tail="Traceback (most recent call last):\n```injected```\n"
                                                "ValueError: bad shape"))
    record_result(system, RunResult(id="nan", status="invalid", reason="cv_score is NaN: report a finite number"))
    system.record("started", "the job started: the wall-clock budget runs from here")
    system.record("pause_requested", "preempted (SIGTERM)")
    system.record("paused", "preempted (SIGTERM); in flight: none")
    system.record("resumed", "resumed after: preempted (SIGTERM)")
    system.record("stopped", "budget: 600 s of wall-clock time used")
    text = write_report(proj, None, lower_is_better=False)
    assert "## Failed runs" in text
    assert "**boom**: failed: exit code 1" in text and "ValueError: bad shape" in text
    assert "**nan**: invalid: cv_score is NaN" in text
    assert "```injected```" not in text  # run output cannot close the code block it is shown in
    assert "Runs: 3 (1 scored)." in text  # as `aisci status` counts them (State.runs_said)
    for what in ("started: the job started", "pause_requested: preempted", "paused:", "resumed: resumed after", "stopped: budget"):
        assert what in text
    assert "| nan | invalid | - |" in text


def test_a_report_with_no_scored_run_still_has_a_plot(bus):
    proj = bus.create_project("empty")
    text = write_report(proj, None)
    assert "Best cv score: **-**" in text
    assert "no scored run" in proj.as_role("viewer").read("report/metric.svg")


def test_best_so_far_and_rounding():
    assert best_so_far([None, 3.0, 2.0, float("nan"), 4.0], lower_is_better=True) == [None, 3.0, 2.0, 2.0, 2.0]
    assert best_so_far([0.5, 0.4, 0.9], lower_is_better=False) == [0.5, 0.5, 0.9]
    assert [fmt_score(v) for v in (0.973333, 53.1234, 3021.7, None, float("inf"))] == \
        ["0.9733", "53.12", "3022", "-", "-"]
