"""The LLM-driven policy: the model reads the project's state (rendered from the bus)
and returns its decision as structured output (a JSON schema the backend enforces,
or that is validated here), never as prose we would have to parse. A server without
structured output gets the object back bare, fenced or inside a sentence: it is read
with the JSON scanner of ``actors.text_protocol``, and anything else is sent back to
the model as a one-line error saying what to send.

The prompt is laid out for a prefix cache: what stays the same from one decision to
the next first (the instructions, the task), then what only grows (the subtasks so
far), then what changes (files, runs), and last what changes every time (the step,
the time and the tokens spent). With the budget line near the top, vLLM served 128
cached tokens per decision (the issue's measurement); ``tests/actors/test_decision_prompt.py``
checks that two consecutive prompts share most of their text.

A decision never ends a project by raising for the model's faults: a prompt over the
window even cut down, replies that are never a decision, a call still unanswered when
the budget ends make the decision a stop, with the reason (the project is then graded
and reported). A model that cannot be reached after its retries is raised: the project
is failed, and a resume continues it once the endpoint is back.
"""

from __future__ import annotations

import json
import time

import pyarrow.compute as pc
from pydantic import BaseModel, Field, ValidationError, field_validator

from bus import Bus, BusError

from . import prompts
from .agent import Subtask
from .llm.failures import cause_of
from .llm.protocol import (
    LLM,
    ContextWindow,
    LLMContextOverflow,
    LLMDeadline,
    LLMError,
    LLMReply,
    LLMRequest,
    LLMUnavailable,
)
from .llm.record import RecordingLLM
from .policy import Decision, State, debug_brief
from .roles import ROLES
from .text_protocol import bad_object_error, find_object
from .tree import Operator, Tree, TreeNode
from .workspace import prompt_map

DECISION_FORM = ('{"action": "dispatch" | "stop", "role": ..., "goal": ..., "reason": ..., '
                 '"operator": "draft" | "improve" | "debug" | "ensemble" (optional), "parent": node id (optional), '
                 '"count": 1.. (optional)}')


DECISION_LIMITS = {"goal": 600, "reason": 400}  # characters


class ModelDecision(BaseModel):
    action: str
    role: str | None = None
    goal: str = ""
    reason: str
    operator: Operator | None = Field(default=None, description="A node of the solution tree: a new draft, an "
                                      "improvement or a fix of `parent`, an ensemble of scored nodes.")
    parent: str | None = Field(default=None, max_length=40)
    count: int = Field(default=1, ge=1, le=64, description="Sibling nodes at once (the same goal, in parallel).")

    @field_validator("goal", "reason")
    @classmethod
    def _cut(cls, value: str, info) -> str:
        # The schema's maxLength is sent to the server, but a server may ignore it: a
        # 5 MB reason went into the decision's event row. Cut here, where it enters.
        limit = DECISION_LIMITS[info.field_name]
        return value if len(value) <= limit else value[:limit - 1] + "…"


def decision_schema() -> dict:
    return {"type": "object", "required": ["action", "reason"],
            "properties": {"action": {"enum": ["dispatch", "stop"]}, "role": {"enum": sorted(ROLES)},
                           "goal": {"type": "string", "maxLength": DECISION_LIMITS["goal"]},
                           "reason": {"type": "string", "maxLength": DECISION_LIMITS["reason"]},
                           "operator": {"enum": ["draft", "improve", "debug", "ensemble"]},
                           "parent": {"type": "string", "maxLength": 40},
                           "count": {"type": "integer", "minimum": 1, "maximum": 64}}}


class LLMPolicy:
    TAG = "orchestrator"
    # A decision is at most ~1,000 characters (the schema's maxLengths); the rest is room
    # for a sentence or a reasoning block around it.
    MAX_REPLY_TOKENS = 1024

    def __init__(self, bus: Bus, llm: LLM, max_invalid: int = 2, window: ContextWindow | None = None):
        """``window``: the model's context window (``LLMConfig.window()``); None if unknown."""
        self.bus, self.llm, self.max_invalid, self.window = bus, llm, max_invalid, window

    def decide(self, state: State) -> Decision:
        """The next step: subtasks to dispatch, or a stop with its reason. Never raises for
        the model's faults (``LLMError``): they are a stop, with what went wrong; except
        an unreachable model (``LLMUnavailable`` after its retries), which is raised: the
        project is then ``failed``, not ended, and a resume once the endpoint is back
        continues it (ending it would throw away a project for a server's restart)."""
        try:
            return self._decide(state)
        except LLMDeadline as e:
            return Decision(stop=True, reason=f"wall-clock budget spent during the orchestrator's model call: "
                                              f"{cause_of(e)}")
        except LLMContextOverflow as e:
            return Decision(stop=True, reason=f"context overflow: the decision prompt did not fit even cut to a "
                                              f"quarter: {e}")
        except LLMError as e:  # refused, malformed, a script run out: the project ends cleanly
            e = cause_of(e)
            if isinstance(e, LLMUnavailable):
                raise e from None
            return Decision(stop=True, reason=f"the orchestrator's model failed: {type(e).__name__}: {str(e)[:400]}")

    def _decide(self, state: State) -> Decision:
        project = self.bus.project(state.config.project)
        view = project.as_role("orchestrator", f"orchestrator-{project.name}")
        llm = RecordingLLM(self.llm, view, project.as_role("system", f"orchestrator-{project.name}"))
        messages = [{"role": "user", "content": self._prompt(state, view)}]
        for _ in range(self.max_invalid):
            reply = self._ask(llm, messages, state, view)
            d, error = self._read(reply.text)
            if d is None and reply.cut:
                error = (f"your reply was cut at {self.MAX_REPLY_TOKENS} tokens (the reply limit): send the JSON "
                         f"object {DECISION_FORM} alone, with a short goal and reason")
            if d is None:  # the model's mistake: shown to it once more, in one line
                messages += [{"role": "assistant", "content": reply.text},
                             {"role": "user", "content": f"ERROR: {error}"}]
                continue
            if d.action == "stop":
                return Decision(stop=True, reason=d.reason)
            if d.operator is not None:
                decision, error = self._grow(d, state)
                if decision is not None:
                    return decision
                messages += [{"role": "assistant", "content": reply.text}, {"role": "user", "content": f"ERROR: {error}"}]
                continue
            n = 1 + len({sid for sid in state.dispatched | set(state.completed) if sid.startswith(f"{d.role}-")})
            return Decision(subtasks=[Subtask(id=f"{d.role}-{n}", role=d.role, goal=d.goal or d.reason)], reason=d.reason)
        return Decision(stop=True, reason=f"the model gave no valid decision in {self.max_invalid} tries")

    @staticmethod
    def _grow(d: ModelDecision, state: State) -> tuple[Decision | None, str]:
        """A decision that grows the solution tree: ``count`` nodes (at most the branches
        setting) of ``d.operator`` under ``d.parent``, each a subtask of ``d.role``. The
        model's mistakes (an unknown parent, a fix of a node that is not buggy) come
        back as the error to show it."""
        tree: Tree = state.tree or Tree(is_lower_better=state.is_lower_better)
        parent = tree.nodes.get(d.parent or "")
        if d.operator in ("improve", "debug") and parent is None:
            known = ", ".join(list(tree.nodes)[:20]) or "none yet: start with a draft"
            return None, f"{d.operator} needs the parent node it works on (parent); the nodes: {known}"
        if d.operator == "debug" and not parent.is_buggy:
            return None, f"node {parent.id} is not buggy ({parent.status}): improve it, or debug a buggy node"
        if d.operator == "draft" and d.parent:
            return None, "a draft has no parent: leave parent out, or improve the parent"
        role = d.role or ("debugger" if d.operator == "debug" else "experimenter")
        count = min(d.count, getattr(state.config, "branches", 1))
        nodes, taken = [], set(state.dispatched) | set(state.completed)
        for _ in range(count):
            node_id = tree.next_id(d.operator, taken)
            taken.add(node_id)
            try:
                nodes.append(TreeNode(id=node_id, operator=d.operator, parent=parent.id if parent else None,
                                      author=f"llm policy ({role})", why=d.reason))
            except ValidationError as e:
                return None, f"not a valid node: {e.errors()[0]['msg']}"
        brief = "\n".join(debug_brief(parent)) if d.operator == "debug" else ""
        subtasks = [Subtask(id=n.id, role=role, goal=d.goal or d.reason,
                            context=f"You carry out node {n.id} of the solution tree ({n.operator}"
                                    f"{' of ' + n.parent if n.parent else ''}): name your runs {n.id}-<something>."
                                    + (f"\n{brief}" if brief else "")) for n in nodes]
        return Decision(subtasks=subtasks, nodes=nodes, reason=d.reason), ""

    def _ask(self, llm: LLM, messages: list[dict], state: State, view) -> LLMReply:
        """One model call. A prompt the server refuses as over the model's window is
        rebuilt at a quarter of the size (files, subtasks and runs shown) and sent once more.

        Raises:
            LLMContextOverflow: refused again; LLMError: the backend's other faults.
        """
        left = state.time_left_s()
        deadline = None if left is None else time.time() + max(left, 0.0)  # the budget holds during the call

        def request() -> LLMRequest:
            return LLMRequest(messages=messages, response_schema=decision_schema(), tag=self.TAG,
                              max_tokens=self.MAX_REPLY_TOKENS, deadline=deadline)
        try:
            return llm.complete(request())
        except LLMContextOverflow:
            messages[:] = [{"role": "user", "content": self._prompt(state, view, share=0.25)}]
            return llm.complete(request())

    @staticmethod
    def _read(text: str) -> tuple[ModelDecision | None, str]:
        """The decision in a reply (bare, fenced or inside prose), or why there is none."""
        obj = find_object(text, "action")
        if obj is None:
            return None, bad_object_error(text, "action", DECISION_FORM, what="decision")
        try:
            d = ModelDecision.model_validate(obj)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'decision'}: {err['msg']}" for err in e.errors())
            return None, f"not a valid decision ({problems}): send one JSON object {DECISION_FORM}"
        if d.action not in ("dispatch", "stop"):
            return None, f"unknown action {d.action!r}: send one JSON object {DECISION_FORM}"
        if d.action == "dispatch" and d.role not in ROLES and not (d.operator and d.role is None):
            return None, f"unknown role {d.role!r}; the roles are {', '.join(sorted(ROLES))}: send {DECISION_FORM}"
        return d, ""

    def _prompt(self, state: State, view, share: float = 1.0) -> str:
        """The decision prompt, showing ``share`` of the usual files, subtasks and runs; a
        share that fits the model's window when that is known (halved until it does)."""
        limit = self.window.prompt_chars(self.MAX_REPLY_TOKENS) if self.window else None
        prompt = self._render(state, view, share)
        # Measured as JSON text (quotes and newlines escaped), as it travels: a conservative
        # size; the tree's lines and the decision form's quotes pushed the raw count under a
        # window the sent prompt was over.
        while limit is not None and len(json.dumps(prompt)) > limit and share > 1 / 32:
            share /= 2
            prompt = self._render(state, view, share)
        return prompt

    def _render(self, state: State, view, share: float) -> str:
        """The prompt: stable parts first, the parts that change every decision last."""
        history = [f"- {sid}: {'finished' if ok else 'failed'}" + _said(state.summaries.get(sid, ""))
                   for sid, ok in state.completed.items()]
        runs = [f"- {r.id}: {r.status}, cv {r.cv_score:.5f}" for r in state.scored_runs]
        files = view.workspace_map()
        # Its own renderings (plan/decisions.md, plan/roadmap.json, plan/steps/) change at
        # every tick and say what the history says: left out, they do not break the prefix.
        files = files.filter(pc.not_equal(files.column("instance"), view.instance)) if files.num_rows else files
        c = state.config
        return prompts.render(
            "orchestrator", project=c.project, roles=", ".join(sorted(ROLES)), task=_task(view, int(4000 * share)),
            history=_some(history, int(100 * share), "earlier subtasks", newest_last=True) or "(none yet)",
            workspace_map=prompt_map(files, int(12_000 * share), order="time") or "(none yet)",
            runs=_some(runs, int(50 * share), "lower-scoring runs", newest_last=False) or "(none yet)",  # best first
            tree="\n".join(state.tree.lines(int(40 * share) or 1)) if state.tree and state.tree.nodes else "(none yet)",
            branches=getattr(c, "branches", 1),
            steps=state.steps + 1, max_steps=c.max_steps, elapsed_s=f"{state.elapsed_s:.0f}",
            budget_s=f"{c.budget_s:.0f}", tokens=state.tokens, max_tokens=c.max_tokens)

    def roadmap(self, state: State) -> list[dict]:
        return [{"subtask": sid, "status": "done" if ok else "failed"} for sid, ok in state.completed.items()] + \
               [{"subtask": sid, "status": "in flight"} for sid in sorted(state.in_flight)]


def _said(summary: str) -> str:
    """What a subtask's end said, past its status (the complete event's summary is
    "<id> <status>: <what the agent said>"), in one line."""
    said = summary.split(": ", 1)[1] if ": " in summary else ""
    return f": {' '.join(said.split())[:200]}" if said else ""


def _task(view, max_chars: int) -> str:
    """What the project is for, with the file it comes from, cut to ``max_chars`` (with a
    note saying so): a task's description, or a paper project's paper (whose prompt said
    "(no task/description.md)": the breaker)."""
    for path, label in (("task/description.md", "task/description.md"),
                        ("task/paper.md", "task/paper.md, the paper to reproduce; the whole is in the file")):
        try:
            if not view.exists(path):
                continue
            text = view.read(path).strip()
        except BusError as e:  # too large, a link: said, not raised
            return f"({path} cannot be shown: {e})"
        if len(text) > max_chars:
            text = text[:max_chars] + f"\n(... {len(text) - max_chars} more characters of {path} not shown)"
        return f"({label})\n{text}"
    return "(no task/description.md nor task/paper.md)"


def _some(lines: list[str], n: int, what: str, newest_last: bool) -> str:
    """``n`` (at least one) of ``lines``: the last ones if ``newest_last``, else the first;
    with a line saying how many were left out."""
    n = max(1, n)
    if len(lines) <= n:
        return "\n".join(lines)
    note = f"({len(lines) - n} {what} not shown)"
    return "\n".join([note] + lines[-n:] if newest_last else lines[:n] + [note])
