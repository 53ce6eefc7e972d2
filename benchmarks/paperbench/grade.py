"""Scores as PaperBench aggregates them: leaves 0 or 1, each inner node the weighted mean of
its children, the root's score the paper's replication score.

The rule (``score_from_children`` in ``paperbench/judge/graded_task_node.py``,
openai/frontier-evals, project/paperbench)::

    score(node) = sum(child.weight * score(child)) / sum(child.weight)
                  0.0 where the children's weights sum to 0

A zero-weight child counts for nothing; a node whose children all weigh 0 scores 0 (it
still counts with its own weight in its parent). PaperBench Code-Dev (``code_only=True``
in ``paperbench/grade.py::run_judge``) grades only the Code Development leaves: the tree is
pruned to them with the weights kept (``code_dev_rubric``), and a rubric without any is
graded as one Code Development leaf, the root itself, as PaperBench does.

``grade_tree(rubric, grade_leaf)`` calls ``grade_leaf`` once per leaf, depth-first, and
returns the ``GradedTaskNode`` tree: every node's score, every leaf's explanation,
JSON-able by ``to_dict()``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .rubric import TaskNode

__all__ = ["GradedTaskNode", "LeafGrade", "PaperGrade", "code_dev_rubric", "grade_tree", "score_from_children"]


class LeafGrade(BaseModel):
    """A judge's verdict on one leaf."""

    model_config = ConfigDict(frozen=True)

    score: Literal[0, 1] = Field(description="1: the criterion is met; 0: it is not (or could not be judged).")
    explanation: str = Field(description="Why, in the judge's words, or why no verdict was reached.")
    valid_score: bool = Field(default=True, description="False when the judge failed (the 0 is by default, "
                              "PaperBench's valid_score); counted as num_invalid_leaf_nodes.")
    judge_metadata: dict[str, Any] | None = Field(default=None, description="The judge's own record (files read, ...).")


class GradedTaskNode(BaseModel):
    """A rubric node with its score; leaves also carry the judge's explanation."""

    model_config = ConfigDict(frozen=True)

    id: str
    requirements: str
    weight: int | float
    task_category: str | None
    finegrained_task_category: str | None
    score: float = Field(description="In [0, 1]: 0 or 1 on a leaf; the weighted mean of the children above.")
    valid_score: bool
    explanation: str
    judge_metadata: dict[str, Any] | None = None
    sub_tasks: tuple[GradedTaskNode, ...] = ()

    def leaves(self) -> list[GradedTaskNode]:
        if not self.sub_tasks:
            return [self]
        return [leaf for c in self.sub_tasks for leaf in c.leaves()]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, in PaperBench's graded_task_tree shape."""
        return self.model_dump(mode="json")


def score_from_children(children: Sequence[GradedTaskNode]) -> float:
    """The weighted mean of the children's scores; 0.0 where their weights sum to 0."""
    total = sum(c.weight for c in children)
    if total == 0:
        return 0.0
    return sum(c.score * c.weight for c in children) / total


def grade_tree(rubric: TaskNode, grade_leaf: Callable[[str, TaskNode], LeafGrade]) -> GradedTaskNode:
    """Grade every leaf with ``grade_leaf(path, leaf)`` and aggregate bottom-up.

    Args:
        rubric: the (possibly pruned) rubric.
        grade_leaf: called once per leaf, depth-first, with the leaf's path (``root/sub_tasks/0/...``).

    Returns:
        The graded tree; ``.score`` of the root is the paper's score, in [0, 1].
    """
    return _grade(rubric, "root", grade_leaf)


def _grade(node: TaskNode, path: str, grade_leaf: Callable[[str, TaskNode], LeafGrade]) -> GradedTaskNode:
    common = {"id": node.id, "requirements": node.requirements, "weight": node.weight,
              "task_category": node.task_category, "finegrained_task_category": node.finegrained_task_category}
    if node.is_leaf:
        verdict = grade_leaf(path, node)
        return GradedTaskNode(**common, score=float(verdict.score), valid_score=verdict.valid_score,
                              explanation=verdict.explanation, judge_metadata=verdict.judge_metadata)
    children = tuple(_grade(c, f"{path}/sub_tasks/{i}", grade_leaf) for i, c in enumerate(node.sub_tasks))
    return GradedTaskNode(**common, score=score_from_children(children), valid_score=True,
                          explanation="Aggregated score from sub-tasks.", sub_tasks=children)


def code_dev_rubric(rubric: TaskNode) -> TaskNode:
    """The rubric PaperBench Code-Dev grades: only the Code Development leaves, weights kept;
    a rubric with none becomes one Code Development leaf (the root, without sub_tasks)."""
    pruned = rubric.with_category("Code Development")
    if pruned is not None:
        return pruned
    return rubric.model_copy(update={"sub_tasks": (), "task_category": "Code Development"})


class PaperGrade(BaseModel):
    """The outcome of grading one submission (PaperBench's JudgeOutput, without its run bookkeeping)."""

    model_config = ConfigDict(frozen=True)

    paper_id: str
    judge_type: str = Field(description="The judge protocol: 'simple' (PaperBench's SimpleJudge).")
    code_only: bool = Field(description="True: PaperBench Code-Dev (only Code Development leaves).")
    score: float = Field(description="The root's score, in [0, 1].")
    num_leaf_nodes: int
    num_invalid_leaf_nodes: int = Field(description="Leaves where the judge gave no valid verdict (scored 0).")
    graded_task_tree: GradedTaskNode

    @classmethod
    def of(cls, paper_id: str, judge_type: str, code_only: bool, tree: GradedTaskNode) -> PaperGrade:
        leaves = tree.leaves()
        return cls(paper_id=paper_id, judge_type=judge_type, code_only=code_only, score=tree.score,
                   num_leaf_nodes=len(leaves), num_invalid_leaf_nodes=sum(not leaf.valid_score for leaf in leaves),
                   graded_task_tree=tree)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
