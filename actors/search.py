"""The baseline's search over the solution tree (no model): draft, improve, debug, ensemble.

- **draft**: one node per model family of the task's grid (``actors.baseline.GRIDS``,
  the first parameters listed for each family);
- **improve**: one step in the hyperparameter neighbourhood of a scored node
  (``SPACES``: one parameter moved to the next value up or down its list), best node
  first, a candidate already tried never again;
- **debug**: a known fix for a failure the baseline can recognise (``known_fix``: a
  timeout or out of memory -> a smaller model; a parameter the model refuses ->
  dropped; an unknown model -> the first the pipeline lists; non-finite metrics -> the
  family's defaults). A failure it cannot recognise is left alone (a model's debugger
  reads the traceback; the baseline cannot);
- **ensemble**: the best node of each model family (the top ``ENSEMBLE_K`` by cv)
  combined by ``code/ensemble.py`` (probabilities and values averaged, labels voted),
  scored by cross-validation on the members' out-of-fold predictions. Made when the
  search would otherwise end (improving stalled, nothing left to improve, or the step
  that fills ``max_nodes``), once per set of members; its parent is its best member.
  With a prior whose best run was an ensemble's, that ensemble's members are the first
  drafts and the first ensemble comes as soon as the families are drafted.

``next_nodes`` returns up to ``branches`` nodes at once, less those still in flight
(run in parallel, placed by Ray), debugs first, then improves, then the ensemble; none when the search is done (``max_nodes`` made,
nothing left to try, or no better score in the last ``patience`` nodes).
"""

from __future__ import annotations

import json
import re

from .baseline import GRIDS
from .memory import order_grid
from .tree import NodeView, Tree, TreeNode

__all__ = ["ENSEMBLE", "SPACES", "drafts", "ensemble_members", "known_fix", "neighbours", "next_nodes"]

# model -> parameter -> (values in order, the value when absent). A step is one place along a list.
_C = ([0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0], 1.0)
_ALPHA = ([0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0], 1.0)
SPACES: dict[str, dict[str, tuple[list, object]]] = {
    "logreg": {"C": _C},
    "ridge": {"alpha": _ALPHA},
    "forest": {"n_estimators": ([100, 200, 400], 100), "min_samples_leaf": ([1, 2, 4, 8], 1)},
    "hgb": {"learning_rate": ([0.03, 0.05, 0.1, 0.2], 0.1), "max_iter": ([100, 200, 400], 100),
            "max_leaf_nodes": ([15, 31, 63], 31)},
    "knn": {"n_neighbors": ([3, 5, 7, 10, 15, 25, 40], 5), "weights": (["uniform", "distance"], "uniform")},
    "tfidf-logreg": {"C": _C}, "char-logreg": {"C": _C},
    "nb": {"alpha": ([0.01, 0.03, 0.1, 0.3, 1.0], 1.0)},
    "tfidf-ridge": {"alpha": _ALPHA}, "char-ridge": {"alpha": _ALPHA},
}
_SIZE_PARAMS = {"n_estimators": 50, "max_iter": 50}  # what a smaller model halves, and its floor
_DEFAULT_SIZE = {("forest", "n_estimators"): 100, ("hgb", "max_iter"): 100}  # scikit-learn's, where absent
_REFUSED_PARAM = re.compile(r"unexpected keyword argument '(\w+)'|The '(\w+)' parameter of \w+ must be")
_CHOICES = re.compile(r"no model '[^']*' for .*choose from \[([^\]]*)\]")


def drafts(data: str, kind: str) -> list[tuple[str, dict]]:
    """The grid's model families, each with the first parameters the grid gives it."""
    seen: dict[str, dict] = {}
    for model, params in GRIDS[(data, kind)]:
        seen.setdefault(model, dict(params))
    return list(seen.items())


def _prior_winners(prior: dict | None, data: str, kind: str) -> list[tuple[str, dict]]:
    """What won in similar earlier projects (``plan/prior.json``), as points of this
    task's search space: a family the grid drafts, every parameter one ``SPACES`` lists
    with one of its values. Per project: its best run that is such a point; where its
    best run was an ensemble, every member of that ensemble that is such a point, in the
    ensemble's order (a new project drafts the whole winning combination, then its
    ensemble: ``_ensemble_won``). (The prior's text came from other projects: anything
    else in it is ignored, never run.)"""
    if not isinstance(prior, dict) or not isinstance(prior.get("runs"), list):
        return []
    families = {model for model, _ in drafts(data, kind)}

    def point(model, params) -> bool:
        return model in families and isinstance(params, dict) and all(
            k in SPACES.get(model, {}) and v in SPACES[model][k][0] for k, v in params.items())

    best: dict[str, tuple[int, list[tuple[str, dict]]]] = {}  # project -> its best rank and what won there
    for run in prior["runs"]:
        if not isinstance(run, dict) or not isinstance(run.get("rank"), int):
            continue
        rank, project = run["rank"], str(run.get("project"))
        members = run.get("members") if isinstance(run.get("members"), list) else []
        won = [(m["model"], dict(m["params"])) for m in members if isinstance(m, dict)
               and point(m.get("model"), m.get("params"))]
        if not won and point(run.get("model"), run.get("params")):
            won = [(run["model"], dict(run["params"]))]
        if won and (project not in best or rank < best[project][0]):
            best[project] = (rank, won)
    out: list[tuple[str, dict]] = []
    for _, won in best.values():
        out += [w for w in won if w not in out]
    return out


def _ensemble_won(prior: dict | None) -> bool:
    """Whether the best run of a similar earlier project was an ensemble node's (its run
    is named after the node). Only a when: nothing of the prior is run."""
    runs = prior.get("runs") if isinstance(prior, dict) else None
    return isinstance(runs, list) and any(isinstance(r, dict) and r.get("rank") == 1 and
                                          str(r.get("run", "")).startswith("ensemble-") for r in runs)


def neighbours(model: str, params: dict) -> list[dict]:
    """The parameters one step away from ``params`` in ``SPACES[model]``, in order."""
    out = []
    for name, (values, default) in SPACES.get(model, {}).items():
        current = params.get(name, default)
        if current not in values:
            continue
        i = values.index(current)
        for j in (i + 1, i - 1):
            if 0 <= j < len(values):
                step = {**params, name: values[j]}
                if values[j] == default and name not in params:
                    step.pop(name)
                out.append(step)
    return out


def known_fix(model: str, params: dict, failure: str) -> tuple[str, dict, str] | None:
    """A fix for a failure the baseline recognises: (model, params, why), or None."""
    low = failure.lower()
    if low.startswith(("timeout", "oom")) or "memoryerror" in low or "out of memory" in low:
        sizes = {k: params.get(k, _DEFAULT_SIZE.get((model, k))) for k in _SIZE_PARAMS}
        smaller = {k: max(v // 2, _SIZE_PARAMS[k]) for k, v in sizes.items()
                   if isinstance(v, int) and v > _SIZE_PARAMS[k]}
        if "size" in params or "images" in low:
            smaller["size"] = 16 if int(params.get("size", 28)) > 16 else 12
        if model == "knn":
            smaller["n_neighbors"] = params.get("n_neighbors", 5)  # knn is not made smaller: fewer rows would be
        fixed = {**params, **smaller}
        return (model, fixed, "ran out of time or memory: a smaller model") if fixed != params else None
    if (found := _REFUSED_PARAM.search(failure)) and (name := found.group(1) or found.group(2)) in params:
        return model, {k: v for k, v in params.items() if k != name}, f"the model refuses the parameter {name!r}"
    if found := _CHOICES.search(failure):
        choices = [c.strip().strip("'\"") for c in found.group(1).split(",") if c.strip()]
        if choices:
            return choices[0], {}, f"no model {model!r} in the pipeline: {choices[0]} instead"
    if low.startswith("invalid") and params:
        return model, {}, "non-finite metrics: the family's default parameters"
    return None


def next_nodes(tree: Tree, data: str, kind: str, branches: int, max_nodes: int, patience: int,
               author: str = "baseline policy", prior: dict | None = None) -> list[TreeNode]:
    """Up to ``branches`` new nodes (drafts first, then debugs, then improves, best-first,
    then an ensemble of the best of each family when the search would otherwise end),
    or [] when the search is done. With a ``prior`` (memory across projects), the drafts
    are ordered and narrowed by it (``actors.memory.order_grid``): what won on similar
    tasks is drafted first."""
    in_flight = sum(1 for n in tree.nodes.values() if n.status == "pending")  # they hold their places
    room = min(branches - in_flight, max_nodes - len(tree.nodes))
    tried = {n.node.key() for n in tree.nodes.values()}
    out: list[TreeNode] = []

    def add(operator: str, model: str, params: dict, why: str, parent: str | None = None,
            members: list[str] = ()) -> None:
        node_id = tree.next_id(operator, {n.id for n in out})
        candidate = TreeNode(id=node_id, operator=operator, parent=parent, author=f"{author} ({_ROLE[operator]})",
                             why=why, model=model, params=params, run=node_id, members=list(members))
        if candidate.key() not in tried and len(out) < room:
            tried.add(candidate.key())
            out.append(candidate)

    def add_ensemble() -> None:
        members = ensemble_members(tree)
        if len(members) >= 2:
            add("ensemble", ENSEMBLE, {}, "the mean (labels: the vote) of the best of each family: " + ", ".join(
                f"{n.id} ({n.node.model}, cv {n.score:.5g})" for n in members), members[0].id, [n.id for n in members])

    for model, params in [*_prior_winners(prior, data, kind), *order_grid(drafts(data, kind), prior)]:
        add("draft", model, params, f"a first {model} ({json.dumps(params)})")
    if out:  # every family drafted before any is improved
        return out
    for n in tree.nodes.values():  # the buggy, in order, once each, two fixes deep at most
        if (n.is_buggy and not tree.children(n.id) and _debug_depth(tree, n.id) < 2 and n.node.model
                and n.node.operator != "ensemble"):
            fix = known_fix(n.node.model, dict(n.node.params), n.failure)
            if fix:
                add("debug", fix[0], fix[1], f"fix {n.id}: {fix[2]}", parent=n.id)
    ranked = tree.ranked()
    if _ensemble_won(prior) and not any(n.node.operator == "ensemble" for n in tree.nodes.values()):
        add_ensemble()  # memory: an ensemble won on a similar task, so it is tried once the families are drafted
    if ranked and _stalled(tree, ranked[0].id, patience):
        add_ensemble()  # the last try before the search ends (once per set of members)
        return out
    last = len(tree.nodes) + room >= max_nodes  # this step fills the tree: the ensemble gets a place in it
    if last:
        add_ensemble()
    for n in ranked:
        for step in neighbours(n.node.model or "", dict(n.node.params)):
            add("improve", n.node.model, step, f"a step from {n.id} (cv {n.score:.5g}): {json.dumps(step)}", n.id)
    if not out:  # nothing left to improve
        add_ensemble()
    return out


ENSEMBLE = "ensemble"  # an ensemble node's model (code/ensemble.py), never a family of the grid
ENSEMBLE_K = 3  # members: three is the fewest a vote of labels can overrule the best one with


def ensemble_members(tree: Tree) -> list[NodeView]:
    """The best scored node of each model family (ensembles aside), best first, at most
    ``ENSEMBLE_K``: an average gains from members that err differently, and two steps
    of one family's parameters mostly err alike."""
    best: dict[str, NodeView] = {}
    for n in tree.ranked():
        if n.node.operator != "ensemble":
            best.setdefault(n.node.model or n.id, n)
    return list(best.values())[:ENSEMBLE_K]


_ROLE = {"draft": "experimenter", "improve": "experimenter", "debug": "debugger", "ensemble": "experimenter"}


def role_of(operator: str) -> str:
    return _ROLE[operator]


def _debug_depth(tree: Tree, node_id: str) -> int:
    return sum(1 for i in tree.path(node_id) if tree.nodes[i].node.operator == "debug")


def _stalled(tree: Tree, best_id: str, patience: int) -> bool:
    """``patience`` improves and fixes made after the best node did not beat it (drafts
    of other families do not count: they are not tries to beat it)."""
    order = list(tree.nodes)
    later = order[order.index(best_id) + 1:]
    return sum(1 for i in later if tree.nodes[i].node.operator != "draft") >= patience
