"""The judge: PaperBench's SimpleJudge protocol, one leaf at a time, with the model injected.

Per leaf (``paperbench/judge/simple.py`` in openai/frontier-evals, project/paperbench):

1. Result Analysis, when the reproduction touched no listed file: 0, without a call
   (PaperBench: "there are no reproduced results to analyze").
2. File selection: the model sees the paper, the addenda (addendum.md then
   judge.addendum.md), the criterion and the submission's file tree for the leaf's category
   (benchmarks.paperbench.submission) and names the most relevant files, best first.
3. Grading: the model sees the paper, the addenda, the chosen files (at most
   ``Limits.max_selected_files``, cut at ``Limits.max_files_chars``), ``reproduce.sh``
   (Code Development) or ``reproduce.sh`` and ``reproduce.log`` (Code Execution, Result
   Analysis; neither in Code-Dev), the criteria before this one in the rubric (its
   ancestors and their earlier siblings, PaperBench's get_prior_nodes) and the criterion
   with its category's question; it answers ``{"score": 0 | 1, "explanation": str}``.

Both answers are structured output: the model is called with a JSON schema and its text is
validated here. An invalid answer is shown back to the model with the reason and asked
once more; a second invalid answer, or a failed call, scores the leaf 0 with
``valid_score=False`` and the reason as its explanation (PaperBench scores a leaf whose
grading raised 0 and invalid). PaperBench asks for prose and has a second model parse it;
asking for the schema directly is one call fewer and the same verdict shape.

The model is any ``JudgeModel``: ``model(messages, json_schema) -> text``, messages as
``[{"role": "system" | "user" | "assistant", "content": str}]``. ``ScriptedJudgeModel``
(benchmarks.paperbench.scripted) is a deterministic one for tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from .grade import LeafGrade, PaperGrade, code_dev_rubric, grade_tree
from .paper import Paper
from .rubric import TaskNode
from .submission import Limits, Submission

__all__ = ["GRADE_SCHEMA", "SELECTION_SCHEMA", "JudgeAnswer", "JudgeModel", "SimpleJudge", "judge_submission",
           "selection_schema"]

JudgeModel = Callable[[list[dict[str, str]], dict[str, Any]], str]

MAX_EXPLANATION_CHARS = 8_000  # a verdict's explanation is kept whole up to this; it is for people
ECHOED_ANSWER_CHARS = 1_500  # an invalid answer shown back to the model, at most
RETRY_RESERVE_CHARS = 2_500  # room kept in a fitted prompt for that answer and the request to answer again
CUT_MARK = "\n(cut here to fit the judge model's context window)\n"

CATEGORY_QUESTIONS = {  # our wording of what PaperBench asks per category (TASK_CATEGORY_QUESTIONS)
    "Code Development": "Does the submission's code actually implement this (code, not a description of it)?",
    "Code Execution": "Did running reproduce.sh actually carry this out?",
    "Result Analysis": "Do the outputs of running reproduce.sh show results that agree with this?",
}

SELECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"files": {"type": "array", "items": {"type": "string"},
                             "description": "Paths from the listing, most relevant first."}},
    "required": ["files"],
    "additionalProperties": False,
}
GRADE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"score": {"type": "integer", "enum": [0, 1], "description": "1 if the criterion is met, else 0."},
                   "explanation": {"type": "string", "description": "What was expected, what the submission "
                                   "shows (name the files), and why that earns the score."}},
    "required": ["score", "explanation"],
    "additionalProperties": False,
}


MAX_ENUM_PATHS = 500  # a listing up to this long is the answer's enum; past it, any string (then checked)


def selection_schema(listed: list[str], n: int) -> dict[str, Any]:
    """SELECTION_SCHEMA for this listing: at most ``n`` paths, each one of those listed.
    A model held to the schema (vLLM's structured output) can then neither name a file
    that is not there nor repeat one until its reply is cut (the packaged SmolLM2 did)."""
    items = {"type": "string", "enum": listed} if len(listed) <= MAX_ENUM_PATHS else {"type": "string"}
    files = {**SELECTION_SCHEMA["properties"]["files"], "items": items, "maxItems": n}
    return {**SELECTION_SCHEMA, "properties": {"files": files}}


def _capped(schema: dict[str, Any], answer_chars: int) -> dict[str, Any]:
    """GRADE_SCHEMA with the explanation's length capped to fit an answer of ``answer_chars``."""
    explanation = {**schema["properties"]["explanation"], "maxLength": max(200, answer_chars - 100)}
    return {**schema, "properties": {**schema["properties"], "explanation": explanation}}


class FileSelection(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    files: list[str] = Field(max_length=10_000)


class JudgeAnswer(BaseModel):
    """A validated verdict (GRADE_SCHEMA)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    score: StrictInt = Field(ge=0, le=1)  # strict: true is not 1 (Literal[0, 1] would take it)
    explanation: str = Field(min_length=1)


class JudgeFailed(Exception):
    """The model gave no valid answer (twice) or its call failed."""


@dataclass
class _Part:
    """One message: a fixed head and tail around a body that may be cut (``cut``: the
    order in which bodies are cut, lowest first; None: never)."""

    role: str
    head: str
    body: str = ""
    tail: str = ""
    cut: int | None = None
    FLOOR = 400  # characters a cut body keeps at least

    @property
    def size(self) -> int:
        return len(self.head) + len(self.body) + len(self.tail)

    def shorten(self, by: int) -> int:
        """Cut the body's end by about ``by`` characters (never under FLOOR); returns how many went."""
        keep = max(self.FLOOR, len(self.body) - by - len(CUT_MARK))
        if keep >= len(self.body):
            return 0
        before = len(self.body)
        self.body = self.body[:keep] + CUT_MARK
        return before - len(self.body)


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _system(code_only: bool) -> str:
    text = ("You grade an attempt to reproduce a research paper. The paper is the ground truth for what a "
            "correct implementation and reproduction are. The submission is a folder of files.")
    if not code_only:
        text += (" It should hold reproduce.sh, a script that runs the whole reproduction; we have run it and "
                 "kept its output as reproduce.log, along with any files it wrote. If reproduce.sh or "
                 "reproduce.log is missing, every criterion that depends on it has failed.")
    return text + (" The paper's rubric splits it into fine-grained criteria; you check exactly one of them.")


class SimpleJudge:
    """Grades one submission against one paper, as PaperBench's SimpleJudge does.

    Args:
        paper: the paper (its rubric, text and addenda).
        submission: the submission folder (after the reproduction, unless code_only).
        model: the JudgeModel.
        code_only: PaperBench Code-Dev: only Code Development leaves, no reproduce.sh/log shown.
        limits: the read caps (benchmarks.paperbench.submission.Limits).
        max_prior_nodes: show at most this many preceding criteria (PaperBench uses 5 for
            its largest rubric, pinn; None shows all).
        max_prompt_chars: the judge model's window for a prompt, in characters (None:
            unbounded). Each prompt is cut to fit, as PaperBench fits its prompts to the
            model's context: the files shown first, then reproduce.log, the paper,
            reproduce.sh, the addenda and the preceding criteria, each keeping its head.
        max_answer_chars: the judge model's room for an answer, in characters (None:
            unbounded): the verdict's schema caps the explanation under it (``maxLength``),
            so that a model constrained to the schema ends its JSON inside its reply cap.
    """

    judge_type = "simple"

    def __init__(self, paper: Paper, submission: str | Path, model: JudgeModel, code_only: bool = False,
                 limits: Limits | None = None, max_prior_nodes: int | None = None,
                 max_prompt_chars: int | None = None, max_answer_chars: int | None = None):
        self.paper = paper
        self.max_prompt_chars = max_prompt_chars
        self.grade_schema = GRADE_SCHEMA if max_answer_chars is None else _capped(GRADE_SCHEMA, max_answer_chars)
        self.model = model
        self.code_only = code_only
        self.submission = Submission(submission, limits)
        self.limits = self.submission.limits
        self.max_prior_nodes = max_prior_nodes
        self.rubric = code_dev_rubric(paper.rubric) if code_only else paper.rubric
        addenda = "\n".join(t for t in (paper.addendum, paper.judge_addendum) if t).strip()
        self.addenda = addenda or "(no addendum)"
        self._paper_text = paper.paper_text
        self._log = None if code_only else self.submission.reproduce_log()
        self._script = self.submission.reproduce_sh
        self._touched = self.submission.reproduction_touched_files()

    def grade(self) -> PaperGrade:
        """Grade every leaf and aggregate (benchmarks.paperbench.grade)."""
        tree = grade_tree(self.rubric, self.grade_leaf)
        return PaperGrade.of(self.paper.id, self.judge_type, self.code_only, tree)

    def grade_leaf(self, path: str, leaf: TaskNode) -> LeafGrade:
        category = leaf.task_category or "Code Development"
        if category == "Result Analysis" and not self._touched:
            return LeafGrade(score=0, explanation="reproduce.sh did not write or change any file the judge reads, "
                             "so there are no reproduced results to analyze.")
        listed = self.submission.listed(category)
        try:
            chosen = self._select(leaf, listed)
            files_text, shown = self._files_text(chosen)
            answer = self._ask(self._grading_messages(path, leaf, category, files_text), self.grade_schema,
                               JudgeAnswer)
        except JudgeFailed as e:
            return LeafGrade(score=0, valid_score=False, explanation=f"not judged: {e}")
        return LeafGrade(score=answer.score, explanation=answer.explanation[:MAX_EXPLANATION_CHARS],
                         judge_metadata={"files_shown": shown, "files_listed": len(listed)})

    def _context(self) -> list[_Part]:
        return [_Part("user", "The paper:\n<paper>\n", self._paper_text, "\n</paper>", cut=2),
                _Part("user", "Clarifications of the paper and of how to judge its reproduction:\n<addendum>\n",
                      self.addenda, "\n</addendum>", cut=4)]

    def _select(self, leaf: TaskNode, listed: list[str]) -> list[str]:
        if not listed:  # nothing to choose from: no call
            return []
        n = self.limits.max_selected_files
        parts = [
            _Part("system", "You pick the files of a paper reproduction that a grader should read to judge one "
                  "criterion. Answer with paths exactly as listed, most relevant first."),
            *self._context(),
            _Part("user", "The criterion:\n<criterion>\n", leaf.requirements, "\n</criterion>"),
            _Part("user", "The submission's files:\n<listing>\n", "\n".join(listed),
                  f"\n</listing>\nName the {n} most relevant files, most relevant first.", cut=1),
        ]
        selection = self._ask(self._fit(parts), selection_schema(listed, n), FileSelection)
        known, chosen = set(listed), []
        for p in selection.files:  # the model is untrusted: only listed paths are read
            p = p.strip()
            p = (p.removeprefix("./")).lstrip("/")
            if p in known and p not in chosen:
                chosen.append(p)
        return chosen[:n]

    def _files_text(self, chosen: list[str]) -> tuple[str, list[str]]:
        parts, shown, used = [], [], 0
        budget = self.limits.max_files_chars
        for rel in chosen:
            content = self.submission.read(rel)
            if content is None:
                continue
            block = f'<file path="{rel}">\n{content if content.strip() else "(empty file)"}\n</file>\n'
            if used + len(block) > budget:
                parts.append(block[: budget - used] + "\n(cut here: the judge's cap on file content)\n")
                shown.append(rel)
                break
            parts.append(block)
            shown.append(rel)
            used += len(block)
        return "".join(parts) or "(no files)", shown

    def _grading_messages(self, path: str, leaf: TaskNode, category: str, files_text: str) -> list[dict[str, str]]:
        what = ("the most relevant docs and the files written by running reproduce.sh"
                if category == "Result Analysis" else "the most relevant files of the submission")
        parts = [_Part("system", _system(self.code_only)), *self._context(),
                 _Part("user", f"Here are {what}:\n<files>\n", files_text, "</files>", cut=0)]
        if not self.code_only:
            parts.append(_Part("user", "The submission's reproduce.sh:\n<reproduce.sh>\n",
                               self._script if self._script is not None else "(does not exist)", "\n</reproduce.sh>",
                               cut=3))
            if category != "Code Development":
                parts.append(_Part("user", "The output of running it:\n<reproduce.log>\n",
                                   self._log if self._log is not None else "(does not exist)", "\n</reproduce.log>",
                                   cut=1))
        prior = self.rubric.prior_nodes(path)
        if self.max_prior_nodes is not None:
            prior = prior[-self.max_prior_nodes:] if self.max_prior_nodes else []
        context = "\n".join(f" -> {n.requirements}" for n in prior)
        parts.append(_Part(
            "user", "For context only (do not grade these), the criteria before this one in the rubric:\n"
            "<preceding_criteria>\n", context, "\n</preceding_criteria>\n\n"
            f"The criterion you grade:\n<criterion>\n{leaf.requirements}\n</criterion>\n"
            f"Its category: <category>{category}</category>. {CATEGORY_QUESTIONS[category]}", cut=5))
        parts.append(_Part(
            "user", "Judge the submission on this criterion alone. Say what a correct resolution looks like in the "
            "paper, what the submission actually shows (name the files), and whether that meets the criterion. "
            "Anything missing from what you were shown counts as not done. Be strict, but do not check things "
            "outside the criterion. Answer with JSON: score 1 if the criterion is met, else 0, and the "
            "explanation."))
        return self._fit(parts)

    def _fit(self, parts: list[_Part]) -> list[dict[str, str]]:
        """The messages, cut to ``max_prompt_chars`` (less what a second attempt adds):
        the cuttable parts in their order, each down to ``_Part.FLOOR`` characters."""
        if self.max_prompt_chars is not None:
            excess = sum(p.size for p in parts) - (self.max_prompt_chars - RETRY_RESERVE_CHARS)
            for part in sorted((p for p in parts if p.cut is not None), key=lambda p: p.cut):
                if excess <= 0:
                    break
                excess -= part.shorten(excess)
        return [{"role": p.role, "content": p.head + p.body + p.tail} for p in parts]

    def _ask(self, messages: list[dict[str, str]], schema: dict[str, Any], shape: type[BaseModel]) -> Any:
        """Call the model; validate; on an invalid answer ask once more; raise JudgeFailed after that."""
        reason = ""
        for attempt in range(2):
            try:
                text = self.model(messages, schema)
            except Exception as e:  # noqa: BLE001 - the model is outside the library (a network call): its failure is a verdict
                raise JudgeFailed(f"the judge model's call failed ({type(e).__name__}: {e})") from None
            try:
                if not isinstance(text, str):
                    raise TypeError(f"the answer is a {type(text).__name__}, not text")
                return shape.model_validate(json.loads(text))
            except (TypeError, ValueError, ValidationError) as e:  # JSONDecodeError is a ValueError
                reason = _one_line(e)
            if attempt == 0:
                messages = [*messages, {"role": "assistant", "content": str(text)[:ECHOED_ANSWER_CHARS]},
                            _user(f"That answer is invalid ({reason}). Answer again with only JSON matching "
                                  f"this schema: {json.dumps(schema)}")]
        raise JudgeFailed(f"the judge's answer was invalid twice ({reason})")


def _one_line(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "the answer"
        return f"{where}: {err['msg']}"
    return str(e).splitlines()[0][:300] if str(e) else type(e).__name__


def judge_submission(paper: Paper, submission: str | Path, model: JudgeModel, code_only: bool = False,
                     limits: Limits | None = None, max_prompt_chars: int | None = None) -> PaperGrade:
    """Grade a submission folder (already reproduced, unless code_only) with `model`
    (``max_prompt_chars``: its window for a prompt, see ``SimpleJudge``).

    Returns:
        The PaperGrade: the root's score, the leaf counts and the graded tree.
    """
    return SimpleJudge(paper, submission, model, code_only=code_only, limits=limits,
                       max_prompt_chars=max_prompt_chars).grade()
