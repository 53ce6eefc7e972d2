"""Grading a paper project as PaperBench grades it, with our model protocol as the judge.

The judge is the library's SimpleJudge (``benchmarks.paperbench.judge``); its model, a
``model(messages, json_schema) -> text`` callable, is built here on our LLM protocol
(``actors.llm``): an OpenAI-compatible endpoint (``--judge openai:<model>``) or the
deterministic evidence-reading judge (``--judge scripted``:
``benchmarks.paperbench.ScriptedJudgeModel``, for tests and CI, labelled as such). Every
call goes through ``RecordingLLM``: an ``llm_call`` event and the request and reply in
``logs/llm/judge-<leaf>/``, as agents' calls are recorded.

Leaves are judged concurrently, one Ray task each (``max_concurrent`` in flight), each on
the reproduced submission folder (local to the driver's node: the tasks are pinned
there); the tree is then aggregated as PaperBench aggregates (``grade_tree``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import ray
from pydantic import BaseModel, Field

from actors.llm.config import LLMConfig, make_llm
from actors.llm.protocol import LLMReply, LLMRequest
from actors.llm.record import RecordingLLM
from benchmarks.paperbench import (
    LeafGrade,
    Paper,
    PaperGrade,
    ScriptedJudgeModel,
    SimpleJudge,
    code_dev_rubric,
)
from benchmarks.paperbench.grade import grade_tree
from benchmarks.paperbench.rubric import TaskNode
from bus import Bus, BusConfig

from .errors import UserError

__all__ = ["JudgeConfig", "grade_submission", "leaf_paths", "parse_judge"]


class JudgeConfig(BaseModel):
    """Who judges: ``scripted`` (the deterministic test judge) or an OpenAI-compatible model."""

    kind: Literal["scripted", "openai"]
    llm: LLMConfig | None = Field(default=None, description="openai: the endpoint and model.")
    max_concurrent: int = Field(default=8, ge=1, le=256, description="Leaves judged at once.")
    max_tokens: int = Field(default=2048, gt=0, description="Cap on one judge answer, in tokens.")

    @property
    def label(self) -> str:
        return "scripted (deterministic evidence rules, not a model)" if self.kind == "scripted" else \
            f"openai:{self.llm.model if self.llm else ''}"


def parse_judge(spec: str | None, base_url: str | None = None, api_key_env: str | None = None) -> JudgeConfig | None:
    """``--judge``: None (not graded), ``scripted``, or ``openai:<model>``. Raises ``UserError``."""
    if not spec:
        return None
    if spec == "scripted":
        return JudgeConfig(kind="scripted")
    backend, _, model = spec.partition(":")
    if backend != "openai" or not model:
        raise UserError(f"--judge {spec!r}: use openai:<model> (with --judge-base-url or AISCI_JUDGE_BASE_URL) or "
                        "scripted (the deterministic test judge)")
    import os
    url = base_url or os.environ.get("AISCI_JUDGE_BASE_URL") or os.environ.get("AISCI_LLM_BASE_URL") or ""
    if not url:
        raise UserError(f"--judge {spec} needs the endpoint: --judge-base-url http://HOST:PORT/v1 "
                        "(or AISCI_JUDGE_BASE_URL)")
    return JudgeConfig(kind="openai", llm=LLMConfig(backend="openai", model=model, base_url=url,
                                                    api_key_env=api_key_env or "OPENAI_API_KEY"))


class _ScriptedJudgeLLM:
    """ScriptedJudgeModel on our LLM protocol (so that its calls are recorded like any)."""

    name = "scripted-judge"
    model = "paperbench-scripted"

    def __init__(self):
        self.judge = ScriptedJudgeModel()

    def complete(self, request: LLMRequest) -> LLMReply:
        text = self.judge(request.messages, request.response_schema or {})
        chars = sum(len(str(m.get("content") or "")) for m in request.messages)
        return LLMReply(text=text, prompt_tokens=chars // 4, completion_tokens=len(text) // 4,
                        model=self.model, backend="scripted")


def judge_model(config: JudgeConfig, bus_config: dict, project: str, instance: str):
    """The library's ``model(messages, json_schema) -> text``, recorded on the bus."""
    llm = _ScriptedJudgeLLM() if config.kind == "scripted" else make_llm(config.llm)
    proj = Bus(config=BusConfig.model_validate(bus_config)).project(project)
    recorded = RecordingLLM(llm, proj.as_role("system", instance), proj.as_role("system", instance))

    def model(messages: list[dict[str, str]], schema: dict[str, Any]) -> str:
        return recorded.complete(LLMRequest(messages=messages, response_schema=schema, max_tokens=config.max_tokens,
                                            tag=instance)).text
    return model


def leaf_paths(rubric: TaskNode, path: str = "root") -> list[tuple[str, TaskNode]]:
    """(path, leaf) for every leaf, depth-first, in grade_tree's path form."""
    if rubric.is_leaf:
        return [(path, rubric)]
    return [pl for i, c in enumerate(rubric.sub_tasks) for pl in leaf_paths(c, f"{path}/sub_tasks/{i}")]


@ray.remote(num_cpus=0, max_retries=0)  # waits on the model: no CPU reserved
def _grade_leaf(paper_dir: str, submission: str, config: dict, code_only: bool, bus_config: dict, project: str,
                path: str) -> dict:
    judge_config = JudgeConfig.model_validate(config)
    instance = "judge-" + path.replace("root", "r").replace("/sub_tasks/", ".")
    judge = SimpleJudge(Paper(paper_dir), submission, judge_model(judge_config, bus_config, project, instance),
                        code_only=code_only)
    leaves = dict(leaf_paths(judge.rubric))
    return judge.grade_leaf(path, leaves[path]).model_dump()


def grade_submission(bus: Bus, project: str, paper: Paper, submission: str | Path, config: JudgeConfig,
                     code_only: bool = False) -> PaperGrade:
    """Judge every leaf (Ray tasks on this node), aggregate; returns the PaperGrade."""
    rubric = code_dev_rubric(paper.rubric) if code_only else paper.rubric
    here = ray.get_runtime_context().get_node_id()
    pin = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(here, soft=False)
    args = (str(paper.root), str(submission), config.model_dump(mode="json"), code_only,
            bus.config.model_dump(mode="json"), project)
    paths = [p for p, _ in leaf_paths(rubric)]
    verdicts: dict[str, LeafGrade] = {}
    pending: dict[Any, str] = {}
    todo = list(paths)
    while todo or pending:
        while todo and len(pending) < config.max_concurrent:
            path = todo.pop(0)
            pending[_grade_leaf.options(scheduling_strategy=pin).remote(*args, path)] = path
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            path = pending.pop(ref)
            try:
                verdicts[path] = LeafGrade.model_validate(ray.get(ref))
            except ray.exceptions.RayTaskError as e:  # the judge's own code failed on this leaf: 0, invalid
                verdicts[path] = LeafGrade(score=0, valid_score=False, explanation=f"not judged: "
                                           f"{str(e).strip().splitlines()[-1][:300]}")
    tree = grade_tree(rubric, lambda path, leaf: verdicts[path])
    return PaperGrade.of(paper.id, "simple", code_only, tree)


def grade_json(grade: PaperGrade, judge: JudgeConfig) -> str:
    return json.dumps({**grade.to_dict(), "judge": judge.label}, indent=1)
