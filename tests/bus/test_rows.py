"""Rows with edge-case fields stay readable (an empty metrics map was written as `{}`,
which the journal reader could not decode as a list: every row of that journal, the
good ones too, became unreadable)."""


def test_an_empty_metrics_map_is_no_metrics(project):
    view = project.as_role("system", "t")
    view.record("experiment", "no metrics", metrics={})
    view.record("experiment", "some", metrics={"cv_score": 0.5})
    rows = project.events().to_pylist()[-2:]
    assert rows[0]["metrics"] is None and dict(rows[1]["metrics"]) == {"cv_score": 0.5}


def test_a_field_can_be_a_function_of_the_rows_own_seq(project):
    row = project.as_role("system", "t").record("run_requested", "x", run=lambda seq: f"r{seq}")
    assert row["run"] == f"r{row['seq']}" and project.events().to_pylist()[-1]["run"] == row["run"]


def test_a_nan_metric_never_hides_a_project_from_the_best_query(bus):
    """The issue's example: one run with cv_score NaN made its project vanish from
    `aisci bus query best`."""
    from bus import query

    for name, values in (("a", [0.7, float("nan"), 0.9]), ("b", [float("nan")]), ("c", [float("inf"), 0.5])):
        view = bus.create_project(name).as_role("system", "t")
        for v in values:
            view.record("experiment", "run", metrics={"cv_score": v})
    best = {r["project"]: r["value"] for r in query.best_metric(bus, "cv_score").to_pylist()}
    assert best == {"a": 0.9, "c": 0.5}
    assert {r["project"]: r["value"] for r in query.best_metric(bus, "cv_score", "min").to_pylist()} == {"a": 0.7, "c": 0.5}
