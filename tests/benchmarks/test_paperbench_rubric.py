"""Our rubric parser and PaperBench's aggregation rule, checked on three real PaperBench
rubrics (tests/benchmarks/data/paperbench/rubrics, copied from openai/frontier-evals; see
its NOTICE) against an independent, straightforward recursion over the raw JSON."""

import hashlib
import json
from pathlib import Path

import pytest

from benchmarks.paperbench import (
    InvalidRubric,
    LeafGrade,
    TaskNode,
    code_dev_rubric,
    grade_tree,
    load_rubric,
    parse_rubric,
    score_from_children,
)

RUBRICS = Path(__file__).parent / "data" / "paperbench" / "rubrics"

# Read once from the files with a plain json walk (docs/paperbench.md quotes them):
# leaves, depth (edges from the root to the deepest leaf), leaves per category.
FIGURES = {
    "semantic-self-consistency": (77, 4, {"Code Development": 50, "Code Execution": 21, "Result Analysis": 6}),
    "stochastic-interpolants": (69, 5, {"Code Development": 58, "Code Execution": 7, "Result Analysis": 4}),
    "mechanistic-understanding": (96, 4, {"Code Development": 36, "Code Execution": 44, "Result Analysis": 16}),
}


def raw(paper_id: str) -> dict:
    return json.loads((RUBRICS / f"{paper_id}.json").read_text())


def coin(node_id: str, path: str) -> int:
    """A deterministic pseudo-random 0/1 per leaf."""
    return hashlib.sha256(f"{path}:{node_id}".encode()).digest()[0] % 2


def hand_score(node: dict, path: str = "root") -> float:
    """The rule written out plainly, on the raw JSON: a leaf's coin; else the children's
    weighted mean, 0 where their weights sum to 0."""
    if not node["sub_tasks"]:
        return float(coin(node["id"], path))
    total = sum(c["weight"] for c in node["sub_tasks"])
    if total == 0:
        return 0.0
    return sum(c["weight"] * hand_score(c, f"{path}/sub_tasks/{i}") for i, c in enumerate(node["sub_tasks"])) / total


def hand_prune(node: dict, category: str) -> dict | None:
    if not node["sub_tasks"]:
        return node if node["task_category"] == category else None
    kept = [k for k in (hand_prune(c, category) for c in node["sub_tasks"]) if k is not None]
    return {**node, "sub_tasks": kept} if kept else None


def coin_judge(path: str, leaf: TaskNode) -> LeafGrade:
    return LeafGrade(score=coin(leaf.id, path), explanation=f"coin for {leaf.id}")


def raw_leaves(node: dict) -> list[dict]:
    return [node] if not node["sub_tasks"] else [x for c in node["sub_tasks"] for x in raw_leaves(c)]


@pytest.mark.parametrize("paper_id", sorted(FIGURES))
def test_real_rubrics_parse_with_their_leaves_and_depth(paper_id):
    rubric = load_rubric(RUBRICS / f"{paper_id}.json")
    n_leaves, depth, per_category = FIGURES[paper_id]
    assert len(rubric.leaves()) == n_leaves == len(raw_leaves(raw(paper_id)))
    assert rubric.depth == depth
    assert {c: len(rubric.leaves(c)) for c in per_category} == per_category
    assert [leaf.id for leaf in rubric.leaves()] == [x["id"] for x in raw_leaves(raw(paper_id))]  # depth-first order
    assert rubric.to_dict() == raw(paper_id)  # nothing lost or invented


@pytest.mark.parametrize("paper_id", sorted(FIGURES))
def test_the_root_score_is_the_hand_computed_weighted_mean(paper_id):
    graded = grade_tree(load_rubric(RUBRICS / f"{paper_id}.json"), coin_judge)
    assert graded.score == pytest.approx(hand_score(raw(paper_id)), abs=1e-12)
    assert 0 < graded.score < 1  # the coins are mixed: the check is not trivially 0 or 1
    leaves = graded.leaves()
    assert all(leaf.explanation.startswith("coin for") for leaf in leaves)
    assert json.loads(json.dumps(graded.to_dict()))["score"] == graded.score  # JSON-able


@pytest.mark.parametrize("paper_id", sorted(FIGURES))
def test_code_dev_grades_only_code_development_leaves_with_their_weights(paper_id):
    rubric = code_dev_rubric(load_rubric(RUBRICS / f"{paper_id}.json"))
    assert {leaf.task_category for leaf in rubric.leaves()} == {"Code Development"}
    assert len(rubric.leaves()) == FIGURES[paper_id][2]["Code Development"]
    pruned = hand_prune(raw(paper_id), "Code Development")
    assert grade_tree(rubric, coin_judge).score == pytest.approx(hand_score(pruned), abs=1e-12)


def test_zero_weight_nodes_count_for_nothing_on_a_real_rubric():
    """PaperBench's resources_provided sets the "Dataset and Model Acquisition" leaves to
    weight 0; in semantic-self-consistency they are all three children of root/sub_tasks/0,
    whose children's weights then sum to 0: it scores 0 even though every leaf scores 1."""
    rubric = load_rubric(RUBRICS / "semantic-self-consistency.json").zero_weight("Dataset and Model Acquisition")
    data = rubric.to_dict()
    assert [c["weight"] for c in data["sub_tasks"][0]["sub_tasks"]] == [0, 0, 0]
    graded = grade_tree(rubric, lambda path, leaf: LeafGrade(score=1, explanation="all met"))
    assert graded.sub_tasks[0].score == 0.0
    weights = [c["weight"] for c in data["sub_tasks"]]
    assert graded.score == pytest.approx(1 - weights[0] / sum(weights))  # the zeroed branch still weighs in its parent
    assert graded.score < 1
    coins = grade_tree(rubric, coin_judge)
    assert coins.score == pytest.approx(hand_score(data), abs=1e-12)


def node(id_, weight, subs=(), cat=None):
    return {"id": id_, "requirements": id_, "weight": weight, "sub_tasks": list(subs),
            "task_category": cat if not subs else None}


def test_the_rule_on_small_trees():
    leaf = lambda i, w: node(i, w, cat="Code Development")
    tree = parse_rubric(node("r", 1, [leaf("a", 3), leaf("b", 1), node("z", 0, [leaf("c", 5)]), node("y", 2, [leaf("d", 0)])]))
    scores = {"a": 1, "b": 0, "c": 1, "d": 1}
    graded = grade_tree(tree, lambda path, n: LeafGrade(score=scores[n.id], explanation=n.id))
    assert graded.sub_tasks[3].score == 0.0  # children's weights sum to 0
    assert graded.score == pytest.approx((3 * 1 + 1 * 0 + 0 * 1 + 2 * 0) / 6)
    assert score_from_children(()) == 0.0
    lone = parse_rubric(node("r", 1, [node("x", 1, [leaf("e", 1)])]))
    assert code_dev_rubric(parse_rubric(leaf("only", 1))).is_leaf
    no_cd = parse_rubric(node("r", 1, [node("x", 1, [node("e", 1, cat="Result Analysis")])]))
    as_leaf = code_dev_rubric(no_cd)  # PaperBench: the root becomes one Code Development leaf
    assert as_leaf.is_leaf and as_leaf.task_category == "Code Development" and as_leaf.id == "r"
    assert lone.depth == 2 and len(lone.leaves()) == 1


def test_prior_nodes_are_ancestors_and_earlier_siblings():
    """PaperBench's get_prior_nodes docstring: for G in A(B(D, E), C(F, G)), A B C F."""
    leaf = lambda i: node(i, 1, cat="Code Development")
    tree = parse_rubric(node("A", 1, [node("B", 1, [leaf("D"), leaf("E")]), node("C", 1, [leaf("F"), leaf("G")])]))
    assert [n.id for n in tree.prior_nodes("root/sub_tasks/1/sub_tasks/1")] == ["A", "B", "C", "F"]
    assert tree.prior_nodes("root") == []


def mutate(data: dict, path: list[int], **change) -> dict:
    data = json.loads(json.dumps(data))
    target = data
    for i in path:
        target = target["sub_tasks"][i]
    for key, value in change.items():
        if value is KeyError:
            del target[key]
        else:
            target[key] = value
    return data


@pytest.mark.parametrize(("path", "change", "says"), [
    ([1, 0], {"weight": -1}, "weight must be a finite number >= 0, got -1"),
    ([1, 0], {"weight": "2"}, "weight must be a finite number >= 0, got '2'"),
    ([1, 0], {"weight": True}, "weight must be a finite number >= 0, got True"),
    ([1, 0], {"task_category": "Coding"}, "task_category"),
    ([0, 0], {"task_category": None}, "a leaf needs a task_category"),
    ([1, 0], {"sub_tasks": []}, "a leaf needs a task_category"),
    ([1], {"task_category": "Code Development"}, "cannot have a task_category"),
    ([1, 0], {"requirements": KeyError}, "'requirements': Field required"),
    ([1, 0], {"sub_tasks": KeyError}, "'sub_tasks': Field required"),
    ([1, 0], {"finegrained_task_category": "Vibes"}, "finegrained_task_category"),
    ([1, 0], {"id": ""}, "'id'"),
])
def test_a_malformed_node_is_one_line_naming_its_path(path, change, says):
    data = mutate(raw("semantic-self-consistency"), path, **change)
    with pytest.raises(InvalidRubric) as e:
        parse_rubric(data, "rubric.json")
    where = "root" + "".join(f"/sub_tasks/{i}" for i in path)
    message = str(e.value)
    assert message.startswith(f"rubric.json: {where} (id ") and says in message and "\n" not in message


def test_unreadable_rubric_files_are_one_line(tmp_path):
    cases = {"missing.json": None, "bad.json": "{not json", "list.json": "[1, 2]",
             "deep.json": '{"a": ' * 300 + "1" + "}" * 300}
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(InvalidRubric) as e:
            load_rubric(tmp_path / name)
        assert str(e.value).startswith(str(tmp_path / name)) and "\n" not in str(e.value), name
