"""What the orchestrator does next: a policy reads the state and returns a decision.

``State`` is re-derived from the bus at every tick (never kept in memory), and a
``Decision`` is a list of subtasks to dispatch, or a stop, always with a reason that
goes into plan/decisions.md. ``BaselinePolicy`` is the built-in, deterministic one:
understand -> implement -> experiment -> submit, each phase retried once. Its
experiment phase is a search over the solution tree (``actors.search``: drafts, then
the best improved and the buggy debugged, ``branches`` at once) or, with
``search="grid"``, one grid of runs (the flat baseline, for comparison).
"""

from __future__ import annotations

import json
from typing import Protocol

from pydantic import BaseModel, Field

from .agent import Subtask
from .search import next_nodes, role_of
from .state import State
from .tree import Tree, TreeNode

__all__ = ["BaselinePolicy", "Decision", "Policy", "State"]


class Decision(BaseModel):
    subtasks: list[Subtask] = Field(default_factory=list)
    stop: bool = False
    reason: str
    nodes: list[TreeNode] = Field(default_factory=list, description="The solution tree's new nodes, each carried "
                                  "out by the subtask of the same id (recorded by the orchestrator on commit).")


class Policy(Protocol):
    def decide(self, state: State) -> Decision: ...

    def roadmap(self, state: State) -> list[dict]: ...


PHASES = (
    ("analyse", "analyst", "Understand the task and its data; write what you find into analysis/."),
    ("implement", "coder", "Write code/train.py: a complete pipeline that scores a model by cross-validation, "
                           "predicts test.csv into submission.csv and writes metrics.json (cv_score)."),
    ("experiment", "experimenter", "Launch experiments that compare models and hyperparameters."),
    ("submit", "writer", "Put the predictions of the best experiment into submission/submission.csv."),
)


class BaselinePolicy:
    """The phases in order; a failed phase is retried once; the target skips to submit.
    ``prior``: ``plan/prior.json`` of memory across projects (None: none), which orders
    the search's drafts as it orders the flat grid."""

    def __init__(self, prior: dict | None = None):
        self.prior = prior

    def decide(self, state: State) -> Decision:
        for phase, role, goal in PHASES:
            attempts = sorted(s for s in state.completed if s.startswith(f"{phase}-"))
            if any(state.completed[s] for s in attempts):
                continue
            if phase == "experiment" and state.target_reached():
                continue
            if phase == "experiment" and _search(state) == "tree":
                if (decision := self._grow(state)) is not None:
                    return decision
                continue
            if len(attempts) >= 2:
                return Decision(stop=True, reason=f"phase {phase} failed twice: stopping")
            params: dict = {"kind": state.config.task_kind, "data": state.config.data_kind}
            if phase == "submit":
                best = state.best_run
                if best is None:
                    return Decision(stop=True, reason="no experiment produced a score: nothing to submit")
                params["best"] = best.id
            sid = f"{phase}-{len(attempts) + 1}"  # the same id as an in-flight attempt: idempotent re-dispatch
            context = f"BASELINE: {json.dumps(params)}"
            if not state.config.bus_memory and phase == "submit":
                context += f"\nThe best run is experiments/{params['best']}/ (cv {state.best_run.cv_score:.5f})."
            why = f"{phase}: {'retry' if attempts else 'next phase'}" + (
                f" (best run so far {params['best']})" if phase == "submit" else "")
            return Decision(subtasks=[Subtask(id=sid, role=role, goal=goal, context=context)], reason=why)
        return Decision(stop=True, reason="every phase is done")

    def _grow(self, state: State) -> Decision | None:
        """The tree's next nodes as subtasks, or None when the search is done."""
        c, tree = state.config, state.tree or Tree(is_lower_better=state.is_lower_better)
        nodes = next_nodes(tree, c.data_kind or "tabular", c.task_kind, branches=getattr(c, "branches", 2),
                           max_nodes=getattr(c, "max_nodes", 24), patience=getattr(c, "patience", 6),
                           prior=self.prior)
        if not nodes:
            return None
        subtasks = [Subtask(id=n.id, role=role_of(n.operator), goal=_GOALS[n.operator], context=_node_context(n, tree))
                    for n in nodes]
        best = tree.best
        return Decision(subtasks=subtasks, nodes=nodes,
                        reason=f"search: {', '.join(f'{n.id} ({n.why})' for n in nodes)}"[:400]
                        + (f"; best so far {best.id} (cv {best.score:.5g})" if best else ""))

    def roadmap(self, state: State) -> list[dict]:
        out = []
        for phase, role, goal in PHASES:
            attempts = [s for s in state.completed if s.startswith(f"{phase}-")]
            status = "done" if any(state.completed[s] for s in attempts) else "failed" if attempts else "todo"
            entry = {"phase": phase, "role": role, "goal": goal, "status": status, "attempts": len(attempts)}
            if phase == "experiment" and _search(state) == "tree":  # the search's nodes, not experiment-<n>
                tree = state.tree or Tree()
                ended = any(s.startswith("submit-") for s in state.dispatched | set(state.completed))
                entry.update(status="done" if ended and tree.best else "searching" if tree.nodes else "todo",
                             attempts=len(tree.nodes), best=tree.best.id if tree.best else None)
            out.append(entry)
        return out


_GOALS = {"draft": "Run one first version of a model family (a new node of the solution tree).",
          "improve": "Run one step from a scored node: the same model, one hyperparameter changed.",
          "debug": "A run failed: read its spec, its code version and the tail of its output, fix the cause "
                   "(code/ or the parameters), check the fix with run, then launch the run again.",
          "ensemble": "Combine the predictions of several scored nodes (code/ensemble.py over their runs), "
                      "scored by cross-validation on their out-of-fold predictions."}


def _search(state: State) -> str:
    return getattr(state.config, "search", "grid")


def _node_context(node: TreeNode, tree: Tree) -> str:
    """What the subtask is told: the node (the baseline reads the BASELINE line) and, to
    debug, the failed parent's run: its spec, code version and the tail of its output."""
    params = {"node": node.id, "model": node.model, "params": node.params, "run": node.run, "parent": node.parent}
    if node.members:  # an ensemble combines its members' runs (each member's own, else its last)
        params["members"] = [_member_run(tree.nodes[m]) for m in node.members if m in tree.nodes]
    lines = [f"BASELINE: {json.dumps(params)}", f"Node {node.id} ({node.operator}): {node.why}"]
    parent = tree.nodes.get(node.parent or "")
    if parent is not None and node.operator == "debug":
        lines += debug_brief(parent)
    return "\n".join(lines)


def _member_run(member) -> str:
    return member.node.run if member.node.run in member.runs else (member.runs[-1] if member.runs else member.id)


def debug_brief(parent) -> list[str]:
    """A failed node's run, as whoever debugs it is told: spec, code version, output tail."""
    run = parent.runs[-1] if parent.runs else None
    tail = parent.failure.replace("`" * 3, "'" * 3)[-2000:]
    return [f"The failed node {parent.id}: run {run or '(none)'}, spec experiments/{run}/spec.json, code "
            f"version {parent.code or 'unknown'}; result experiments/{run}/result.json.",
            "Why it failed and the tail of its output:", "`" * 3, tail, "`" * 3]
