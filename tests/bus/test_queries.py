"""Queries and re-grounding over the real index (journals and Parquet segments)."""

import duckdb
import pandas as pd
import pyarrow.compute as pc
import pytest

from bus import Bus, BusConfig, query
from bus.reground import render_map


def fill(bus: Bus, name: str, scores: list[float], tokens: int = 10):
    view = bus.create_project(name).as_role("experimenter", f"{name}-x")
    for i, s in enumerate(scores):
        view.write(f"experiments/r{i}/metrics.json", f'{{"score": {s}}}', summary=f"run {i}", metrics={"score": s, "loss": 1 - s})
    view.record("llm_call", "q", prompt_tokens=tokens, completion_tokens=tokens // 10)
    bus.create_project(name).as_role("coder").record("llm_call", "q", prompt_tokens=5, completion_tokens=1)


def test_best_per_project_follows_each_projects_own_metric_direction(bus):
    """Issue 13's example: an RMSE project's worst run was shown as its best (every
    project ranked by max). Each project's job records its direction when it starts."""
    for name, lower, scores in (("rmse", 1.0, [55.0, 53.9, 61.0]), ("acc", 0.0, [0.91, 0.97, 0.95]),
                                ("old", None, [0.2, 0.4])):  # no direction recorded: higher
        view = bus.create_project(name).as_role("system", "t")
        if lower is not None:
            view.record("started", "the job started", metrics={"is_lower_better": lower})
        for score in scores:
            view.record("experiment", "run", metrics={"cv_score": score})
    best = {r["project"]: (r["value"], r["lower_is_better"]) for r in query.best_metric(bus, "cv_score").to_pylist()}
    assert best == {"rmse": (53.9, True), "acc": (0.97, False), "old": (0.4, False)}
    assert query.best_metric(bus, "cv_score", mode="max").to_pylist()[0]["value"] == 61.0  # asked for: all by max
    with pytest.raises(ValueError, match="mode must be"):
        query.best_metric(bus, "cv_score", mode="best")
    # A project that recorded its direction but never the metric asked for (the breaker's
    # `bus query best --metric score` after a replay with no grade: an IndexError traceback).
    for name in ("zz-no-score", "zzz-no-score"):
        bus.create_project(name).as_role("system", "t").record("started", "the job started",
                                                               metrics={"is_lower_better": 1.0})
    best = {r["project"]: r["value"] for r in query.best_metric(bus, "cv_score").to_pylist()}
    assert best == {"rmse": 53.9, "acc": 0.97, "old": 0.4}


def test_best_metric_across_projects_and_tokens_per_role(bus):
    fill(bus, "a", [0.5, 0.9, 0.7])
    fill(bus, "b", [0.95, 0.2], tokens=100)
    fill(bus, "c", [0.1])
    bus.index.compact("a")  # mix compacted and journal-only projects
    best = query.best_metric(bus, "score", mode="max").to_pylist()
    assert [(r["project"], r["value"]) for r in best] == [("b", 0.95), ("a", 0.9), ("c", 0.1)]
    assert best[1]["path"] == "experiments/r1/metrics.json"
    worst_loss = query.best_metric(bus, "loss", mode="min").to_pylist()
    assert worst_loss[0]["project"] == "b" and abs(worst_loss[0]["value"] - 0.05) < 1e-9
    assert query.best_metric(bus, "nonexistent").num_rows == 0
    tokens = {(r["project"], r["role"]): (r["prompt_tokens"], r["completion_tokens"], r["calls"])
              for r in query.tokens_by_role(bus).to_pylist()}
    assert tokens[("b", "experimenter")] == (100, 10, 1)
    assert tokens[("a", "coder")] == (5, 1, 1)


def test_events_since_and_latest_files(bus):
    fill(bus, "p", [0.1, 0.2, 0.3])
    coder = bus.project("p").as_role("coder")
    mark = coder.write("code/m.py", "1")["seq"]
    coder.write("code/m.py", "2")
    coder.write("code/n.py", "3")
    since = query.events(bus, "p", since=mark)
    assert since.column("seq").to_pylist() == [mark + 1, mark + 2]
    assert query.events(bus, "p", kinds=["llm_call"]).num_rows == 2
    latest = {r["path"]: r["version"] for r in query.latest_files(bus, "p").to_pylist()}
    assert latest["code/m.py"] == mark + 1 and latest["code/n.py"] == mark + 2
    assert len(latest) == 5


def test_parquet_is_readable_by_duckdb_and_pandas_as_is(bus):
    fill(bus, "a", [0.5, 0.9])
    fill(bus, "b", [0.3])
    for p in ("a", "b"):
        bus.index.compact(p)
    pattern = str(bus.root / "index" / "segments" / "*" / "*.parquet")
    rows = duckdb.sql(
        f"SELECT project, max(metrics['score']) AS best FROM read_parquet('{pattern}') GROUP BY project ORDER BY project"
    ).fetchall()
    assert rows == [("a", 0.9), ("b", 0.3)]
    one = next((bus.root / "index" / "segments" / "a").glob("*.parquet"))
    frame = pd.read_parquet(one)
    assert list(frame["seq"]) == sorted(frame["seq"]) and set(frame["project"]) == {"a"}


def test_workspace_map_is_scoped_and_changes_since(bus):
    proj = bus.create_project("p")
    proj.as_role("system").write("task/description.md", "task")
    proj.as_role("writer").write("report/selfcheck.json", "draft", summary="first draft")
    coder = proj.as_role("coder")
    first = coder.write("code/train.py", "v1", summary="baseline")
    coder.write("code/train.py", "v2 longer", summary="better")
    entries = {r["path"]: r for r in coder.workspace_map().to_pylist()}
    assert set(entries) == {"task/description.md", "code/train.py"}  # report/ is not the coder's to read
    e = entries["code/train.py"]
    assert (e["size"], e["role"], e["summary"]) == (9, "coder", "better") and e["version"] > first["seq"]
    text = render_map(coder.workspace_map())
    assert "code/train.py  v" in text and "better" in text
    mark = first["seq"]
    proj.as_role("writer").write("report/selfcheck.json", "second")
    proj.as_role("orchestrator").record("decision", "try a bigger model")
    changes = coder.changes_since(mark).to_pylist()
    assert [(c["kind"], c["path"]) for c in changes] == [("write", "code/train.py"), ("decision", None)]
    assert coder.list("code") == ["code/train.py"]


def test_reground_is_the_same_from_journals_and_segments(tmp_path):
    bus = Bus(config=BusConfig(root=tmp_path / "r", compact_rows=7))
    coder = bus.create_project("p").as_role("coder")
    for i in range(50):
        coder.write(f"code/f{i % 13}.py", str(i))
    before = coder.workspace_map()
    bus.index.compact("p")
    after = Bus(tmp_path / "r").project("p").as_role("coder").workspace_map()
    assert before.equals(after)
    assert len(list((tmp_path / "r" / "index" / "segments" / "p").glob("*.parquet"))) <= bus.config.max_segments
    assert pc.sum(pc.equal(after.column("role"), "coder")).as_py() == 13


def test_cross_project_rollup_keeps_every_row_once(tmp_path):
    from bus.index import ROLLUP_AFTER_FILES

    root = tmp_path / "r"
    bus = Bus(config=BusConfig(root=root, compact_rows=10, max_segments=3))
    projects = [f"p{i:02d}" for i in range(ROLLUP_AFTER_FILES // 2 + 4)]
    for name in projects:
        fill(bus, name, [0.01 * i for i in range(25)])  # several compactions per project
    total = sum(Bus(root).project(p).events().num_rows for p in projects)

    def scanned():
        table = Bus(root).index.scan(columns=["project", "seq"])
        pairs = list(zip(table.column("project").to_pylist(), table.column("seq").to_pylist()))
        assert len(pairs) == len(set(pairs)), "a row was read twice"
        return len(pairs)

    assert not (root / "index" / "rollup").exists()
    assert scanned() == total  # more segment files than the threshold: builds a rollup
    assert len(list((root / "index" / "rollup").glob("roll-*.parquet"))) == 1
    assert scanned() == total  # read back through the rollup
    # More rows after the rollup, including merges that straddle its bounds.
    for name in projects[:5]:
        fill(bus, name, [0.99, 0.5])
    for name in projects:
        bus.index.compact(name)
    assert scanned() == total + 5 * 4  # two writes and two LLM calls per project
    assert scanned() == sum(Bus(root).project(p).events().num_rows for p in projects)
    best = query.best_metric(Bus(root), "score", mode="max").to_pylist()
    assert [r["project"] for r in best[:5]] == projects[:5] and best[0]["value"] == 0.99
    assert query.best_metric(Bus(root), "score", projects=["p07"]).to_pylist()[0]["value"] == 0.24
