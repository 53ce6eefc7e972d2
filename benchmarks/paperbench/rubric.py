"""A PaperBench rubric: the tree of task nodes in a paper's ``rubric.json``.

Each node (PaperBench's ``TaskNode``, ``paperbench/rubric/tasks.py`` in
openai/frontier-evals, project/paperbench) has::

    id              str, unique in practice (two real rubrics, bbox and bridging-data-gaps,
                    repeat 3 ids each, so nodes are addressed by their path, not their id)
    requirements    str, what the node asks of a reproduction
    weight          a number >= 0 (an int in every real rubric): its share among its siblings
    sub_tasks       list of nodes; a node without sub_tasks is a leaf
    task_category   leaves only: "Code Development", "Code Execution" or "Result Analysis"
    finegrained_task_category  optional, one of FINEGRAINED_TASK_CATEGORIES

PaperBench's ``Subtree`` category is made at grading time (its max-depth approximation),
never written in a file, so a file that uses it is refused here.

A node's path is its position: ``root``, ``root/sub_tasks/2``, ``root/sub_tasks/2/sub_tasks/0``.
A malformed file is an ``InvalidRubric`` whose one line names the file, the path and the
node's id, e.g. ``rubric.json: root/sub_tasks/1 (id 'a1'): a leaf needs a task_category``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    model_validator,
)

__all__ = ["FINEGRAINED_TASK_CATEGORIES", "MAX_RUBRIC_BYTES", "MAX_RUBRIC_DEPTH", "TASK_CATEGORIES", "InvalidRubric",
           "TaskCategory", "TaskNode", "load_rubric", "parse_rubric"]

TaskCategory = Literal["Code Development", "Code Execution", "Result Analysis"]
TASK_CATEGORIES: tuple[str, ...] = ("Code Development", "Code Execution", "Result Analysis")
FINEGRAINED_TASK_CATEGORIES: tuple[str, ...] = (
    "Environment & Infrastructure Setup",
    "Dataset and Model Acquisition",
    "Data Processing & Preparation",
    "Method Implementation",
    "Experimental Setup",
    "Evaluation, Metrics & Benchmarking",
    "Logging, Analysis & Presentation",
)
FinegrainedCategory = Literal[FINEGRAINED_TASK_CATEGORIES]  # type: ignore[valid-type]

# The biggest real rubric (pinn) is 2.35 MB with 1,963 leaves and depth 8; these caps
# leave room for any real one and refuse a file built to exhaust memory or the stack.
MAX_RUBRIC_BYTES = 16 * 1024 * 1024
MAX_RUBRIC_DEPTH = 64


class InvalidRubric(ValueError):
    """A rubric file that cannot be graded; the message is one line saying where and why."""


class TaskNode(BaseModel):
    """One node of a rubric (frozen). Leaves carry a task_category; inner nodes do not."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # PaperBench reads these six keys, ignores others

    id: str = Field(min_length=1, description="The node's id (a UUID in PaperBench's rubrics).")
    requirements: str = Field(description="What the node asks of a reproduction, in words.")
    weight: StrictInt | StrictFloat = Field(ge=0, allow_inf_nan=False,
                                            description="Its share among its siblings (>= 0; 0 counts for nothing).")
    sub_tasks: tuple[TaskNode, ...] = Field(description="Its children; none for a leaf.")
    task_category: TaskCategory | None = Field(default=None, description="Leaves only: what the judge checks.")
    finegrained_task_category: FinegrainedCategory | None = Field(default=None, description="Optional finer label.")

    @model_validator(mode="after")
    def _category_on_leaves_only(self) -> Self:
        if self.sub_tasks and self.task_category is not None:
            raise ValueError("an inner node (one with sub_tasks) cannot have a task_category")
        if not self.sub_tasks and self.task_category is None:
            raise ValueError("a leaf needs a task_category (" + ", ".join(TASK_CATEGORIES) + ")")
        return self

    @property
    def is_leaf(self) -> bool:
        return not self.sub_tasks

    @property
    def depth(self) -> int:
        """Edges on the longest path from this node down to a leaf (a lone leaf: 0)."""
        return 0 if self.is_leaf else 1 + max(c.depth for c in self.sub_tasks)

    def walk(self, path: str = "root") -> Iterator[tuple[str, TaskNode]]:
        """Every node with its path, depth-first, parents before children."""
        yield path, self
        for i, child in enumerate(self.sub_tasks):
            yield from child.walk(f"{path}/sub_tasks/{i}")

    def leaves(self, category: str | None = None) -> list[TaskNode]:
        """The leaves in depth-first order (PaperBench's get_leaf_nodes), optionally of one category."""
        return [n for _, n in self.walk() if n.is_leaf and (category is None or n.task_category == category)]

    def find(self, node_id: str) -> TaskNode:
        """The first node (depth-first) with this id. Raises KeyError if none."""
        for _, node in self.walk():
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def prior_nodes(self, path: str) -> list[TaskNode]:
        """What the judge is shown as context for the node at `path`: its ancestors and the
        siblings before it and before each ancestor, root first (PaperBench's get_prior_nodes)."""
        parts = path.split("/")[1:]
        indices = [int(i) for i in parts[1::2]]
        prior: list[TaskNode] = []
        node = self
        for i in indices:
            prior.append(node)
            prior.extend(node.sub_tasks[:i])
            node = node.sub_tasks[i]
        return prior

    def with_category(self, category: str) -> TaskNode | None:
        """The tree keeping only the leaves of `category`; an inner node left with no
        children is dropped; None when nothing is left (PaperBench's reduce_to_category).
        Weights are kept as they are: the kept siblings share their parent's score."""
        if self.is_leaf:
            return self if self.task_category == category else None
        kept = tuple(c for c in (s.with_category(category) for s in self.sub_tasks) if c is not None)
        return self.model_copy(update={"sub_tasks": kept}) if kept else None

    def zero_weight(self, finegrained_task_category: str) -> TaskNode:
        """The tree with every leaf of this finegrained category at weight 0 (PaperBench's
        ``resources_provided`` does it for "Dataset and Model Acquisition" when the
        datasets and models are handed to the agent)."""
        if self.is_leaf:
            return self.model_copy(update={"weight": 0}) if self.finegrained_task_category == finegrained_task_category else self
        return self.model_copy(update={"sub_tasks": tuple(c.zero_weight(finegrained_task_category) for c in self.sub_tasks)})

    def to_dict(self) -> dict:
        """The node as rubric.json has it (JSON-able)."""
        return {"id": self.id, "requirements": self.requirements, "weight": self.weight,
                "sub_tasks": [c.to_dict() for c in self.sub_tasks], "task_category": self.task_category,
                "finegrained_task_category": self.finegrained_task_category}


def _depth_of(data: object) -> int:
    """The nesting depth of raw JSON, iteratively (a deep file must not exhaust the stack)."""
    deepest, stack = 0, [(data, 0)]
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return deepest


def _where(data: object, loc: tuple) -> str:
    """`root/sub_tasks/1 (id 'x')` for a pydantic error location; the field, if any, after a colon."""
    node, path, field = data, "root", None
    parts = list(loc)
    while parts:
        key = parts.pop(0)
        if key == "sub_tasks" and parts and isinstance(parts[0], int) and isinstance(node, dict):
            i = parts.pop(0)
            subs = node.get("sub_tasks")
            if not isinstance(subs, list) or i >= len(subs):
                break
            node, path = subs[i], f"{path}/sub_tasks/{i}"
        else:
            field = str(key)
            break
    node_id = node.get("id") if isinstance(node, dict) else None
    where = path + (f" (id {node_id!r})" if isinstance(node_id, str) else "")
    return where + (f", field {field!r}" if field else "")


def parse_rubric(data: object, source: str = "rubric.json") -> TaskNode:
    """A rubric from parsed JSON.

    Raises:
        InvalidRubric: one line naming `source`, the first bad node's path and id, and what is wrong.
    """
    depth = _depth_of(data)
    if depth > 2 * MAX_RUBRIC_DEPTH + 2:  # each tree level is two JSON levels (object, sub_tasks list)
        raise InvalidRubric(f"{source}: nested deeper than {MAX_RUBRIC_DEPTH} task levels")
    try:
        return TaskNode.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        # A union (int | float) reports under its member's name; drop those parts.
        loc = tuple(p for p in loc if p not in ("int", "float", "constrained-int", "constrained-float")
                    and not (isinstance(p, str) and p.startswith(("strict-", "function-"))))
        msg = err["msg"].removeprefix("Value error, ")
        if loc and loc[-1] == "weight":  # one message for the union's two complaints
            msg = f"weight must be a finite number >= 0, got {err['input']!r}"
        places = {tuple(x["loc"])[:-1] if x["loc"] and x["loc"][-1] in ("int", "float") else tuple(x["loc"])
                  for x in e.errors()}
        more = f" (and {len(places) - 1} more)" if len(places) > 1 else ""
        raise InvalidRubric(f"{source}: {_where(data, loc)}: {msg}{more}") from None


def load_rubric(path: str | Path) -> TaskNode:
    """A rubric.json, checked whole.

    Raises:
        InvalidRubric: missing, too big (> MAX_RUBRIC_BYTES), not JSON, or a malformed node (one line).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise InvalidRubric(f"{path}: cannot read the rubric ({e.strerror})") from None
    if size > MAX_RUBRIC_BYTES:
        raise InvalidRubric(f"{path}: {size} bytes, over the {MAX_RUBRIC_BYTES}-byte cap for a rubric")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidRubric(f"{path}: not JSON ({e})") from None
    except RecursionError:
        raise InvalidRubric(f"{path}: nested too deeply to read") from None
    return parse_rubric(data, str(path))

