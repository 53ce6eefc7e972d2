"""The solution tree (actors.tree) and the baseline's search over it (actors.search):
nodes on a real bus, rebuilt from its events; a forged or damaged node is not a node;
drafts, then debugs of recognised failures, then improves, best first."""

import pytest
from pydantic import ValidationError

from actors.orchestrator import OrchestratorConfig
from actors.runs import RunResult, record_result
from actors.search import known_fix, neighbours, next_nodes
from actors.state import State
from actors.tree import Tree, TreeNode, read_node, record_node, tree_rows


def node(id, operator="draft", parent=None, model="forest", **params):
    return TreeNode(id=id, operator=operator, parent=parent, author="test", why="because", model=model,
                    params=params, run=id)


def tree_of(project, lower=False):
    state = State.from_events(project.events(), OrchestratorConfig(project=project.name, is_lower_better=lower))
    return Tree.build(state, state.node_rows, lambda h: read_node(project, h),
                      lambda run: f"{run.status}: it failed")


def result(system, run, status="ok", score=None, subtask=None):
    system.record("run_requested", run, run=run, subtask=subtask)
    record_result(system, RunResult(id=run, status=status, metrics={} if score is None else {"cv_score": score}))


def test_a_node_is_validated_as_untrusted_input():
    with pytest.raises(ValidationError):
        TreeNode(id="../../x", operator="draft", author="m", why="w")
    with pytest.raises(ValidationError):
        TreeNode(id="draft-1", operator="rewrite", author="m", why="w")
    with pytest.raises(ValidationError):
        TreeNode(id="draft-1", operator="draft", author="m", why="w", sandbox="none")
    with pytest.raises(ValidationError):
        TreeNode(id="draft-1", operator="draft", author="m", why="w", params={f"p{i}": i for i in range(30)})
    assert len(TreeNode(id="draft-1", operator="draft", author="m", why="w" * 5000).why) == 600


def test_the_tree_is_rebuilt_from_the_bus_with_derived_status_score_and_parents(project):
    view, system = project.as_role("orchestrator", "o"), project.as_role("system", "s")
    d1 = record_node(view, project, node("draft-1"), None)
    record_node(view, project, node("draft-2", model="knn"), None)
    record_node(view, project, node("improve-1", "improve", "draft-1", n_estimators=200), d1["seq"])
    result(system, "draft-1", score=0.9)
    result(system, "draft-2", status="timeout")
    system.record("complete", "draft-2 finished", subtask="draft-2", status="finished")
    result(system, "improve-1", score=0.95)
    # A forged row (its hash is not a node) and a node whose parent is unknown are not nodes.
    view.record("tree_node", "forged", subtask="draft-9", hash=project.put_object(b"{}"))
    record_node(view, project, node("debug-1", "debug", "draft-7"), None)
    tree = tree_of(project)
    assert list(tree.nodes) == ["draft-1", "draft-2", "improve-1"]
    assert tree.best.id == "improve-1" and tree.path("improve-1") == ["draft-1", "improve-1"]
    assert tree.nodes["draft-2"].is_buggy and tree.nodes["draft-2"].failure == "timeout: it failed"
    assert tree.nodes["draft-1"].status == "ok" and tree.nodes["draft-1"].code is None
    rows = {r["node"]: r for r in tree_rows(project.bus, [project.name])}
    assert rows["improve-1"]["parent"] == "draft-1" and rows["improve-1"]["score"] == 0.95
    assert rows["draft-2"]["status"] == "timeout"
    assert tree_of(project, lower=True).best.id == "draft-1"  # the direction is the task's


def test_known_fixes_and_neighbourhoods():
    assert known_fix("forest", {"n_estimators": 200}, "timeout: ran past 900 s")[1] == {"n_estimators": 100}
    assert known_fix("hgb", {}, "oom: killed")[1] == {"max_iter": 50}
    assert known_fix("forest", {"n_estimators": 50}, "timeout: ran past 900 s") is None  # as small as it goes
    assert known_fix("logreg", {"C": 1.0, "bogus": 2},
                     "failed: TypeError: __init__() got an unexpected keyword argument 'bogus'")[1] == {"C": 1.0}
    assert known_fix("lgbm", {}, "failed: no model 'lgbm' for tabular classification; choose from "
                                 "['forest', 'hgb']")[:2] == ("forest", {})
    assert known_fix("logreg", {"C": 1.0}, "failed: KeyError: 'x'") is None  # not recognised: left alone
    assert neighbours("logreg", {"C": 1.0}) == [{"C": 3.0}, {"C": 0.3}]
    assert {"weights": "distance"} in neighbours("knn", {})


def test_the_search_drafts_then_debugs_then_improves_the_best_and_stops_when_stalled(project):
    view, system = project.as_role("orchestrator", "o"), project.as_role("system", "s")
    first = next_nodes(tree_of(project), "tabular", "classification", branches=2, max_nodes=20, patience=3)
    assert [(n.id, n.model) for n in first] == [("draft-1", "logreg"), ("draft-2", "forest")]
    for n in first:
        record_node(view, project, n, None)
    result(system, "draft-1", score=0.9)
    result(system, "draft-2", status="timeout")
    for n in first:
        system.record("complete", n.id, subtask=n.id, status="finished")
    second = next_nodes(tree_of(project), "tabular", "classification", branches=2, max_nodes=20, patience=3)
    assert [n.id for n in second] == ["draft-3", "draft-4"]  # every family drafted first
    for n in second:
        record_node(view, project, n, None)
        result(system, n.id, score=0.8)
    third = next_nodes(tree_of(project), "tabular", "classification", branches=2, max_nodes=20, patience=3)
    assert [(n.id, n.parent) for n in third] == [("debug-1", "draft-2"), ("improve-1", "draft-1")]
    assert third[0].params == {"n_estimators": 100}
    # Stalled: two tries after the best did not beat it (drafts do not count).
    for n in third:
        record_node(view, project, n, tree_of(project).nodes[n.parent].seq)
        result(system, n.id, score=0.85)
    assert len(next_nodes(tree_of(project), "tabular", "classification", branches=2, max_nodes=20, patience=3)) == 2
    assert next_nodes(tree_of(project), "tabular", "classification", branches=2, max_nodes=6, patience=30) == []
    # Stalled: the last try is an ensemble of the best node of each family (improve-1 is
    # logreg as draft-1 is), top three by cv, its parent the best of them.
    fourth = next_nodes(tree_of(project), "tabular", "classification", branches=2, max_nodes=20, patience=2)
    assert [(n.id, n.operator, n.parent, n.members) for n in fourth] == [
        ("ensemble-1", "ensemble", "draft-1", ["draft-1", "debug-1", "draft-3"])]
    row = record_node(view, project, fourth[0], [tree_of(project).nodes[m].seq for m in fourth[0].members])
    assert len(row["derived_from"]) == 3
    result(system, "ensemble-1", score=0.88)
    assert next_nodes(tree_of(project), "tabular", "classification", branches=2, max_nodes=20, patience=2) == []
    assert "ensemble-1 (ensemble of draft-1, debug-1, draft-3): cv 0.88000" in "\n".join(tree_of(project).lines())


def test_an_ensemble_takes_the_last_place_and_can_be_the_best_node(project):
    view, system = project.as_role("orchestrator", "o"), project.as_role("system", "s")

    def grow(**settings):
        return next_nodes(tree_of(project), "tabular", "classification", branches=2, **settings)

    for i, n in enumerate(grow(max_nodes=5, patience=9)):
        record_node(view, project, n, None)
        result(system, n.id, score=0.8 + i / 100)
    drafts = grow(max_nodes=5, patience=9)
    record_node(view, project, drafts[0], None)  # one in flight (no result yet): it holds one of the 2 places
    assert [n.id for n in grow(max_nodes=5, patience=9)] == ["draft-4"]
    for n in drafts:
        if n.id != drafts[0].id:
            record_node(view, project, n, None)
        result(system, n.id, score=0.7)
    # 4 nodes of 5: the step that fills the tree makes the ensemble (two scored families at least).
    last = grow(max_nodes=5, patience=9)
    assert [n.operator for n in last] == ["ensemble"] and last[0].members == ["draft-2", "draft-1", "draft-3"]
    record_node(view, project, last[0], [tree_of(project).nodes[m].seq for m in last[0].members])
    result(system, "ensemble-1", score=0.95)
    tree = tree_of(project)
    assert tree.best.id == "ensemble-1" and tree.path("ensemble-1") == ["draft-2", "ensemble-1"]
    rows = {r["node"]: r for r in tree_rows(project.bus, [project.name])}
    assert rows["ensemble-1"]["parent"] == "draft-2" and rows["ensemble-1"]["score"] == 0.95
    # A member must be in the tree before the ensemble, as a parent must.
    with pytest.raises(ValidationError):
        TreeNode(id="ensemble-2", operator="ensemble", author="m", why="w", members=["draft-1", "draft-1"])
    record_node(view, project, TreeNode(id="ensemble-2", operator="ensemble", author="m", why="w", parent="draft-1",
                                        members=["draft-1", "draft-9"]), None)
    assert "ensemble-2" not in tree_of(project).nodes


def test_a_prior_drafts_what_won_first_and_ignores_what_is_not_in_the_space():
    """Memory across projects in the tree search: the rank-1 run of a similar project is
    the first draft when it is a point of the search space; a prior's other text (written
    by models) is never run: unknown models, parameters or values are ignored."""
    run = {"rank": 1, "of": 6, "model": "knn", "params": {"n_neighbors": 5, "weights": "distance"}}
    hostile = [{"rank": 1, "of": 6, "model": "rm -rf", "params": {}},
               {"rank": 1, "of": 6, "model": "knn", "params": {"n_neighbors": 10**9}},
               {"rank": 1, "of": 6, "model": "forest", "params": {"n_jobs": -1}},
               {"rank": 2, "of": 6, "model": "logreg", "params": {"C": 10.0}}, "text", None]
    nodes = next_nodes(Tree(is_lower_better=False), "tabular", "classification", branches=8, max_nodes=20,
                       patience=3, prior={"runs": [*hostile, run]})
    assert (nodes[0].model, nodes[0].params) == ("knn", {"n_neighbors": 5, "weights": "distance"})
    assert all(n.model in ("logreg", "forest", "hgb", "knn") for n in nodes)
    assert not any(n.params.get("n_jobs") or n.params.get("n_neighbors") == 10**9 for n in nodes)
    plain = next_nodes(Tree(is_lower_better=False), "tabular", "classification", branches=8, max_nodes=20, patience=3)
    assert (plain[0].model, plain[0].params) != ("knn", {"n_neighbors": 5, "weights": "distance"})


def test_a_prior_where_an_ensemble_won_makes_the_ensemble_once_the_families_are_drafted(project):
    view, system = project.as_role("orchestrator", "o"), project.as_role("system", "s")
    prior = {"runs": [{"project": "digits-1", "run": "ensemble-1", "rank": 1, "of": 9, "model": None},
                      {"project": "digits-1", "run": "draft-4", "rank": 2, "of": 9, "model": "knn",
                       "params": {"n_neighbors": 7}}]}

    def grow(prior):
        return next_nodes(tree_of(project), "tabular", "classification", branches=2, max_nodes=20, patience=6,
                          prior=prior)

    first = grow(prior)
    assert (first[0].model, first[0].params) == ("knn", {"n_neighbors": 7})  # the best template run there
    while step := grow(prior):  # the whole search, to its end
        for i, n in enumerate(step):
            record_node(view, project, n, None)
            result(system, n.id, score=0.8 + i / 100)
    ops = [n.node.operator for n in tree_of(project).nodes.values()]
    assert ops.count("ensemble") == 1 and ops[:ops.index("ensemble")] == ["draft"] * ops.index("ensemble")
    assert ops.index("ensemble") == 4  # right after the 4 families' drafts, not after improving stalled


def test_a_prior_where_an_ensemble_won_drafts_its_members_first_in_its_order():
    """The winning ensemble's members (the prior carries them) are the first drafts, in
    the ensemble's order, before the grid; a member that is no point of the search space
    (a model's own run, a hostile value) is passed over, never run."""
    members = [{"run": "draft-3", "model": "forest", "params": {"n_estimators": 400}},
               {"run": "mine", "model": None, "params": None},
               {"run": "draft-1", "model": "knn", "params": {"n_neighbors": 10**9}},
               {"run": "draft-2", "model": "logreg", "params": {"C": 10.0}}, "text"]
    prior = {"runs": [{"project": "digits-1", "run": "ensemble-1", "rank": 1, "of": 9, "model": None,
                       "members": members},
                      {"project": "digits-1", "run": "draft-4", "rank": 2, "of": 9, "model": "knn",
                       "params": {"n_neighbors": 7}}]}
    nodes = next_nodes(Tree(is_lower_better=False), "tabular", "classification", branches=8, max_nodes=20,
                       patience=3, prior=prior)
    assert [(n.model, n.params) for n in nodes[:2]] == [("forest", {"n_estimators": 400}), ("logreg", {"C": 10.0})]
    assert not any(n.params.get("n_neighbors") == 10**9 for n in nodes)
