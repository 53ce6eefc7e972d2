"""Grading a paper project as PaperBench grades it, with our model protocol as the judge.

The judge is the library's SimpleJudge (``benchmarks.paperbench.judge``); its model, a
``model(messages, json_schema) -> text`` callable, is built here on our LLM protocol
(``actors.llm``): an OpenAI-compatible endpoint (``--judge openai:<model>``), the
cluster's vLLM engine actor (``--judge vllm:<path>``: the one the agents use when they
name the same model, placed by the driver as for ``--model vllm:``), or the
deterministic evidence-reading judge (``--judge scripted``:
``benchmarks.paperbench.ScriptedJudgeModel``, for tests and CI, labelled as such). Every
call goes through ``RecordingLLM``: an ``llm_call`` event and the request and reply in
``logs/llm/judge-<leaf>/``, as agents' calls are recorded. Where the model's window is
known (vLLM's ``max_model_len``, or ``context_tokens``), each prompt is cut to fit it
(``SimpleJudge(max_prompt_chars=...)``) and a reply is capped at a quarter of it.

Leaves are judged concurrently, one Ray task each (``max_concurrent`` in flight), each on
the reproduced submission folder (local to the driver's node: the tasks are pinned
there); the tree is then aggregated as PaperBench aggregates (``grade_tree``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NamedTuple

import ray
from pydantic import BaseModel, Field

from actors.llm.config import LLMConfig, make_llm
from actors.llm.protocol import LLMReply, LLMRequest
from actors.llm.record import RecordingLLM
from actors.llm.server import RemoteLLM
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

__all__ = ["JudgeConfig", "JudgedGrade", "grade_submission", "judge_instance", "leaf_paths", "parse_judge"]

PROGRESS_EVERY_S = 30.0  # a progress line while the judge works (a real model: minutes for a rubric)


class JudgeConfig(BaseModel):
    """Who judges: ``scripted`` (the deterministic test judge) or an OpenAI-compatible model."""

    kind: Literal["scripted", "openai", "vllm"]
    llm: LLMConfig | None = Field(default=None, description="openai: the endpoint and model; vllm: the model "
                                  "and the engine's settings.")
    max_concurrent: int = Field(default=8, ge=1, le=256, description="Leaves judged at once.")
    max_tokens: int = Field(default=2048, gt=0, description="Cap on one judge answer, in tokens.")

    @property
    def label(self) -> str:
        return "scripted (deterministic evidence rules, not a model)" if self.kind == "scripted" else \
            f"{self.kind}:{self.llm.model if self.llm else ''}"

    def reply_tokens(self) -> int:
        """The cap on one answer: ``max_tokens``, at most a quarter of a known window."""
        window = self.llm.window() if self.llm else None
        return min(self.max_tokens, window.tokens // 4) if window else self.max_tokens

    def max_answer_chars(self) -> int | None:
        """Characters an answer may take within its cap (2.5 a token: a safe side of prose's
        ~4); None where the window is unknown (the cap then binds the model alone)."""
        window = self.llm.window() if self.llm else None
        return int(self.reply_tokens() * 2.5) if window else None

    def max_prompt_chars(self) -> int | None:
        """Characters of prompt that fit beside a reply; None where the window is unknown."""
        window = self.llm.window() if self.llm else None
        return window.prompt_chars(self.reply_tokens()) if window else None


def parse_judge(spec: str | None, base_url: str | None = None, api_key_env: str | None = None) -> JudgeConfig | None:
    """``--judge``: None (not graded), ``scripted``, ``openai:<model>`` or ``vllm:<path>``.
    Raises ``UserError``."""
    if not spec:
        return None
    if spec == "scripted":
        return JudgeConfig(kind="scripted")
    backend, _, model = spec.partition(":")
    if backend not in ("openai", "vllm") or not model.strip():
        raise UserError(f"--judge {spec!r}: use openai:<model> (with --judge-base-url or AISCI_JUDGE_BASE_URL), "
                        "vllm:<model path> (the cluster's vLLM engine) or scripted (the deterministic test judge)")
    if backend == "vllm":
        return JudgeConfig(kind="vllm", llm=LLMConfig(backend="vllm", model=model))
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
        # Rules, not a model: no tokens (estimated ones counted in a project's token totals).
        return LLMReply(text=text, prompt_tokens=0, completion_tokens=0, model=self.model, backend="scripted")


def judge_model(config: JudgeConfig, bus_config: dict, project: str, instance: str):
    """The library's ``model(messages, json_schema) -> text``, recorded on the bus."""
    if config.kind == "scripted":
        llm = _ScriptedJudgeLLM()
    else:  # vllm: the cluster's engine actor (placed by the driver first: cluster.engine.place_engine)
        llm = RemoteLLM(config.llm) if config.kind == "vllm" else make_llm(config.llm)
    proj = Bus(config=BusConfig.model_validate(bus_config)).project(project)
    recorded = RecordingLLM(llm, proj.as_role("system", instance), proj.as_role("system", instance))

    def model(messages: list[dict[str, str]], schema: dict[str, Any]) -> str:
        return recorded.complete(LLMRequest(messages=messages, response_schema=schema,
                                            max_tokens=config.reply_tokens(), tag=instance)).text
    return model


def leaf_paths(rubric: TaskNode, path: str = "root") -> list[tuple[str, TaskNode]]:
    """(path, leaf) for every leaf, depth-first, in grade_tree's path form."""
    if rubric.is_leaf:
        return [(path, rubric)]
    return [pl for i, c in enumerate(rubric.sub_tasks) for pl in leaf_paths(c, f"{path}/sub_tasks/{i}")]


def judge_instance(path: str) -> str:
    """The name a leaf's judge calls are recorded under (``logs/llm/<it>/``): ``root/sub_tasks/0/sub_tasks/2``
    is ``judge-r.0.2``."""
    return "judge-" + path.replace("root", "r").replace("/sub_tasks/", ".")


@ray.remote(num_cpus=0, max_retries=0)  # waits on the model: no CPU reserved
def _grade_leaf(paper_dir: str, submission: str, config: dict, code_only: bool, bus_config: dict, project: str,
                path: str) -> dict:
    judge_config = JudgeConfig.model_validate(config)
    instance = judge_instance(path)
    judge = SimpleJudge(Paper(paper_dir), submission, judge_model(judge_config, bus_config, project, instance),
                        code_only=code_only, max_prompt_chars=judge_config.max_prompt_chars(),
                        max_answer_chars=judge_config.max_answer_chars())
    leaves = dict(leaf_paths(judge.rubric))
    return judge.grade_leaf(path, leaves[path]).model_dump()


class JudgedGrade(NamedTuple):
    grade: PaperGrade
    wall_s: float  # from the first leaf sent to the last verdict

    @property
    def leaves_per_min(self) -> float:
        return self.grade.num_leaf_nodes / self.wall_s * 60 if self.wall_s > 0 else float("inf")


def grade_submission(bus: Bus, project: str, paper: Paper, submission: str | Path, config: JudgeConfig,
                     code_only: bool = False, say: Callable[[str], None] = lambda line: None) -> JudgedGrade:
    """Judge every leaf (Ray tasks on this node), aggregate; returns the PaperGrade and
    the judging's wall time. ``say`` gets a progress line every ``PROGRESS_EVERY_S``."""
    t0 = last = time.monotonic()
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
        if time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            say(f"judging: {len(verdicts)}/{len(paths)} leaves in {last - t0:.0f} s")
        for ref in done:
            path = pending.pop(ref)
            try:
                verdicts[path] = LeafGrade.model_validate(ray.get(ref))
            except ray.exceptions.RayTaskError as e:  # the judge's own code failed on this leaf: 0, invalid
                verdicts[path] = LeafGrade(score=0, valid_score=False, explanation=f"not judged: "
                                           f"{str(e).strip().splitlines()[-1][:300]}")
    tree = grade_tree(rubric, lambda path, leaf: verdicts[path])
    return JudgedGrade(PaperGrade.of(paper.id, "simple", code_only, tree), time.monotonic() - t0)


def grade_json(judged: JudgedGrade, judge: JudgeConfig) -> str:
    return json.dumps({**judged.grade.to_dict(), "judge": judge.label, "judge_wall_s": round(judged.wall_s, 3)},
                      indent=1)
