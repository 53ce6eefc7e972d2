"""The solution tree: every candidate solution is a node on the bus (as AIDE's journal).
(An ensemble node has several parents, its ``members``: the tree is then a DAG.)

A node is what a policy decided to try (``TreeNode``: its id, the operator that made
it, its parent, who made it and why, and for the baseline the model and parameters
it runs). It is written once, by the orchestrator, as ``plan/tree/<id>.json`` and as a
``tree_node`` event (the commit point; its columns: ``subtask`` the node's id, which
is also the id of the subtask that carries it out, ``status`` the operator, ``run``
the run it plans, ``hash`` its content in the version store, ``derived_from`` the
parent node's event). What happened to it is never stored in it: its runs, score,
status and code version are derived from the bus at every tick (``Tree.build``), so a
node written just before a crash is there on resume, and the tree is always rebuilt
from the bus, never from memory. ``plan/tree/<id>.json`` is then re-rendered with
those derived facts, for people and other agents.

The node's content is read back from the version store by its event's hash and
validated (``TreeNode``: a model's decision can shape it), never from the file.

Across projects: ``tree_rows(bus, projects)`` gives one row per node (project, node,
operator, parent, run, status, score), from the index alone.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bus import BusError

from .score import Score
from .state import RunRecord, State

__all__ = ["NODE_EVENT", "NODE_ID", "NodeView", "Operator", "Tree", "TreeNode", "node_path", "record_node",
           "tree_rows"]

NODE_EVENT = "tree_node"
Operator = Literal["draft", "improve", "debug", "ensemble"]
NODE_ID = r"^(draft|improve|debug|ensemble)-[0-9]{1,5}$"
OUTPUT_TAIL_CHARS = 2000  # of a failed run's output, shown to whoever debugs it
ParamValue = float | int | str | bool | None


def node_path(node_id: str) -> str:
    return f"plan/tree/{node_id}.json"


class TreeNode(BaseModel):
    """A candidate as decided (untrusted where a model decided it: every field is checked)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: str = Field(pattern=NODE_ID, description="Also the id of the subtask that carries it out.")
    operator: Operator
    parent: str | None = Field(default=None, pattern=NODE_ID, description="The node it improves or fixes.")
    author: str = Field(max_length=80, description="Who made it: the policy and the role that carries it out.")
    why: str = Field(max_length=600)
    model: str | None = Field(default=None, max_length=40, description="The baseline's model family, if any.")
    params: dict[str, ParamValue] = Field(default_factory=dict, description="The baseline's model parameters.")
    run: str | None = Field(default=None, description="The run it plans (the baseline: its own id); None: the "
                            "runs its subtask asks for.")
    members: list[str] = Field(default_factory=list, max_length=5, description="An ensemble's nodes (its parent "
                               "is the first, the best by cv when it was made); empty for any other operator.")

    @field_validator("members")
    @classmethod
    def _member_ids(cls, value: list[str]) -> list[str]:
        if any(not isinstance(m, str) or not re.match(NODE_ID, m) for m in value) or len(set(value)) != len(value):
            raise ValueError("members: distinct node ids")
        return value

    @field_validator("why", mode="before")
    @classmethod
    def _cut(cls, value: Any) -> Any:
        return value[:599] + "…" if isinstance(value, str) and len(value) > 600 else value

    @field_validator("params")
    @classmethod
    def _small(cls, value: dict) -> dict:
        if len(value) > 20 or any(len(k) > 40 or (isinstance(v, str) and len(v) > 80) for k, v in value.items()):
            raise ValueError("at most 20 parameters, names up to 40 characters, text values up to 80")
        return value

    def key(self) -> str:
        """What it runs (model and parameters; an ensemble: its members), to tell a
        candidate already tried."""
        return json.dumps([self.model, self.params] + ([sorted(self.members)] if self.members else []), sort_keys=True)


class NodeView(BaseModel):
    """A node with what the bus says happened to it (derived at every tick, never stored)."""

    node: TreeNode
    seq: int = Field(description="Its tree_node event.")
    runs: list[str] = Field(default_factory=list, description="The runs of its subtask (or the one it planned).")
    status: Literal["pending", "ok", "buggy"] = "pending"
    score: float | None = None
    code: str | None = Field(default=None, description="The code version its first run was asked for with.")
    failure: str = Field(default="", description="Why its run failed: status, reason, the tail of its output.")

    @property
    def id(self) -> str:
        return self.node.id

    @property
    def is_buggy(self) -> bool:
        return self.status == "buggy"


class Tree(BaseModel):
    """The nodes of a project, in creation order, with their derived facts."""

    nodes: dict[str, NodeView] = Field(default_factory=dict)
    is_lower_better: bool = False

    @classmethod
    def build(cls, state: State, rows: list[dict], read_node: Callable[[str], TreeNode | None],
              read_failure: Callable[[RunRecord], str] = lambda run: run.status or "") -> "Tree":
        """The tree from ``state`` (runs, subtasks, code versions) and the ``tree_node``
        event rows; ``read_node(hash)`` reads a node's content back (None: unreadable,
        skipped). ``read_failure(run)``: what a failed run said (result.json)."""
        tree = cls(is_lower_better=state.is_lower_better)
        for row in rows:
            node = read_node(row["hash"] or "")
            if node is None or node.id != row["subtask"] or node.id in tree.nodes:
                continue  # damaged or forged content, or a second record of an id: the first owns it
            if any(p not in tree.nodes for p in [node.parent, *node.members] if p is not None):
                continue  # a parent (an ensemble's members) must come first
            runs = [r for r in state.runs if r.subtask == node.id or r.id == node.run]
            view = NodeView(node=node, seq=row["seq"], runs=[r.id for r in runs],
                            code=runs[0].code if runs else None)
            scored = [state.score(r) for r in runs if r.cv_score is not None]
            ended = node.id in state.completed and all(r.status is not None for r in runs)
            if scored:
                view.status, view.score = "ok", max(scored).value
            elif ended:
                view.status = "buggy"
                failed = [r for r in runs if r.status not in (None, "ok")]
                view.failure = read_failure(failed[-1]) if failed else (
                    "asked for no run" if not runs else "its run wrote no finite cv_score")
            tree.nodes[node.id] = view
        return tree

    # -- derived facts -----------------------------------------------------------------

    def ranked(self) -> list[NodeView]:
        """Nodes with a score, best first."""
        scored = [n for n in self.nodes.values() if n.score is not None]
        return sorted(scored, key=lambda n: Score(n.score, self.is_lower_better), reverse=True)

    @property
    def best(self) -> NodeView | None:
        ranked = self.ranked()
        return ranked[0] if ranked else None

    def children(self, node_id: str) -> list[NodeView]:
        return [n for n in self.nodes.values() if n.node.parent == node_id]

    def path(self, node_id: str) -> list[str]:
        """The ids from the root to ``node_id``."""
        out = []
        while node_id is not None and node_id in self.nodes:
            out.append(node_id)
            node_id = self.nodes[node_id].node.parent
        return out[::-1]

    def next_id(self, operator: str, taken: set[str] = frozenset()) -> str:
        n = 1 + sum(1 for i in set(self.nodes) | set(taken) if i.startswith(f"{operator}-"))
        return f"{operator}-{n}"

    def lines(self, limit: int = 40) -> list[str]:
        """One line per node, for a model's prompt (best first, then the rest in order)."""
        ranked = self.ranked()
        rest = [n for n in self.nodes.values() if n.score is None]
        out = []
        for n in (ranked + rest)[:limit]:
            score = f"cv {n.score:.5f}" if n.score is not None else n.status
            fail = f"; failed: {' '.join(n.failure.split())[:160]}" if n.is_buggy else ""
            of = ", ".join(n.node.members) if n.node.members else n.node.parent
            out.append(f"- {n.id} ({n.node.operator}{' of ' + of if of else ''}): {score}; "
                       f"runs {', '.join(n.runs) or 'none'}{fail}")
        return out


def read_node(project, digest: str) -> TreeNode | None:
    """A node's content from the version store, validated; None where it is not a node."""
    try:
        return TreeNode.model_validate_json(project.read_object(digest))
    except (ValidationError, ValueError, BusError):  # not JSON, not a node, not stored, damaged
        return None


def record_node(view, project, node: TreeNode, parent_seq: int | list[int] | None) -> dict:
    """Write ``node``: its content into the version store and ``plan/tree/<id>.json``,
    then its ``tree_node`` event (the commit point; ``derived_from``: the parent's event,
    for an ensemble its members' events, the parent first). Returns the event row."""
    derived = [parent_seq] if isinstance(parent_seq, int) else list(parent_seq or [])
    data = node.model_dump_json(indent=1)
    digest = project.put_object(data.encode())
    view.write_if_changed(node_path(node.id), data, f"{node.operator} {node.id}: {node.why}"[:200])
    return view.record(NODE_EVENT, f"{node.operator} {node.id}" + (f" of {node.parent}" if node.parent else "")
                       + f": {node.why}"[:300], path=node_path(node.id), hash=digest, subtask=node.id,
                       status=node.operator, run=node.run, derived_from=derived or None)


def tree_rows(bus, projects: list[str] | None = None) -> list[dict]:
    """One row per node of each project (all by default), from the index alone: project,
    node, operator, parent, and its last run: run, status (ok, failed..., pending), score (cv_score)."""
    out = []
    for name in projects or bus.projects():
        events = bus.project(name).events().to_pylist()
        results = {e["run"]: e for e in events if e["kind"] == "experiment" and e["run"]}
        asked: dict[str, list[str]] = {}  # subtask -> the runs it asked for, in order
        for e in events:
            if e["kind"] == "run_requested" and e["subtask"] and e["run"]:
                asked.setdefault(e["subtask"], []).append(e["run"])
        seq_to_node = {}
        for e in events:
            if e["kind"] != NODE_EVENT or not e["subtask"]:
                continue
            seq_to_node[e["seq"]] = e["subtask"]
            runs = [r for r in [e["run"], *asked.get(e["subtask"], [])] if r in results]
            result = results[runs[-1]] if runs else None
            out.append({"project": name, "node": e["subtask"], "operator": e["status"],
                        "parent": seq_to_node.get((e["derived_from"] or [None])[0]),
                        "run": result["run"] if result else e["run"],
                        "status": result["status"] if result else "pending",
                        "score": dict(result["metrics"] or []).get("cv_score") if result else None,
                        "time": e["time"]})
    return out
