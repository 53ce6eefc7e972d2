"""A paper project's grade replayed from its recorded judge calls, with no model
(``aisci replay P`` of a paper project).

The judge's every call is recorded (``logs/llm/judge-<leaf>/``, ``cluster.paper_grade``).
A replay runs the same protocol (``SimpleJudge``) leaf by leaf, each leaf's model the
recording of that leaf (``ScriptedLLM.from_bus``), over the reproduced submission rebuilt
from the bus: the submission's files, ``report/reproduce.log``, and the files the
reproduction wrote that the judge can be shown (``keep_outputs``: docs, code and tables,
each up to what the judge reads of a file), dated as the reproduction dated them (the
copy before its start, the outputs after). Its grade must be the recorded one, leaf by
leaf: a grade that does not follow from the recorded answers, or answers that no longer
fit the submission (a call asked past the recording), is a difference, said by leaf.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from actors.llm.protocol import LLMRequest
from actors.llm.scripted import ScriptedLLM
from benchmarks.paperbench import Paper, PaperGrade, SimpleJudge, prepare_reproduction
from benchmarks.paperbench.grade import grade_tree
from benchmarks.paperbench.submission import (
    CODE_SUFFIXES,
    DOC_SUFFIXES,
    SKIPPED_DIRS,
    TABLE_SUFFIXES,
    Limits,
)
from bus import Bus, BusError, RoleView

from . import scratch
from .errors import UserError
from .paper_grade import judge_instance
from .paper_reproduce import (
    export_submission,
    reproduction_start,
    submission_files,
    written_files,
)
from .paper_settings import settings_of

__all__ = ["KEPT", "keep_outputs", "replay_grade"]

KEPT = "report/reproduced"  # the reproduction's outputs the judge can be shown, as it read them
MAX_KEPT_FILES, MAX_KEPT_BYTES = 2_000, 64 * 2**20
_SHOWN = DOC_SUFFIXES | CODE_SUFFIXES | TABLE_SUFFIXES  # what the judge lists (benchmarks.paperbench.submission)


def keep_outputs(system: RoleView, folder: Path, given: set[str]) -> dict:
    """Put the files the reproduction wrote or changed in ``folder`` (dated at or after
    its start) that a judge can be shown onto the bus under ``KEPT``; returns what was
    kept (for ``report/reproduction.json``): ``outputs_kept`` and ``outputs_complete``."""
    started = reproduction_start(folder)
    if started is None:
        return {"outputs_kept": 0, "outputs_complete": False}
    cap = Limits().max_file_bytes
    kept, total, complete = 0, 0, True
    for rel, path, _ in written_files(folder, given, started):
        if path.suffix not in _SHOWN or any(s in part for s in SKIPPED_DIRS for part in rel.split("/")[:-1]):
            continue  # never shown to a judge
        with open(path, "rb") as f:
            data = f.read(cap)
        if kept >= MAX_KEPT_FILES or total + len(data) > MAX_KEPT_BYTES:
            complete = False
            continue
        try:
            system.write(f"{KEPT}/{rel}", data, summary="written by the reproduction (what the judge reads)")
        except BusError:  # a name the bus refuses: the replay will miss it
            complete = False
            continue
        kept, total = kept + 1, total + len(data)
    return {"outputs_kept": kept, "outputs_complete": complete}


def _rebuild(system: RoleView, code_only: bool, dest: Path) -> None:
    """The reproduced submission as the judge saw it, from the bus."""
    export_submission(submission_files(system), dest)
    if code_only:
        return
    started = prepare_reproduction(dest)  # the copy dated before the start, as the reproduction did
    after = started + 1
    (dest / "reproduce.log").write_bytes(system.read_bytes("report/reproduce.log"))
    for path in system.list(KEPT):
        out = dest / path[len(KEPT) + 1:]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(system.read_bytes(path))
        os.utime(out, (after, after))
    os.utime(dest / "reproduce.log", (after, after))


def replay_grade(bus: Bus, project: str) -> tuple[PaperGrade, dict, list[str]]:
    """The grade replayed from the recording, the recorded grade, and the leaves where
    they differ (``path: recorded -> replayed``; empty when the replay agrees).

    Raises:
        UserError: not a paper project, not graded, graded before the outputs were kept,
            or its paper folder is not on this machine.
    """
    settings = settings_of(bus, project)
    if settings is None:
        raise UserError(f"{project} has no paper settings: it is not a paper project")
    proj = bus.project(project)
    system = proj.as_role("system", "replay")
    if not system.exists("report/paperbench.json"):
        raise UserError(f"{project} was not graded (no judge was configured): there is no judge's recording to replay")
    recorded = json.loads(system.read("report/paperbench.json"))
    if not settings.code_dev and not system.exists("report/reproduction.json") or \
            not settings.code_dev and "outputs_kept" not in json.loads(system.read("report/reproduction.json")):
        raise UserError(f"{project} was graded before the reproduction's outputs were kept on the bus: its grade "
                        "cannot be replayed")
    if not Path(settings.paper, "rubric.json").is_file():
        raise UserError(f"{project}'s paper folder {settings.paper} is not on this machine: the replay needs its "
                        "rubric and paper")
    paper = Paper(settings.paper)
    viewer = proj.as_role("viewer")
    work = bus.root / "scratch" / project / "replay"
    scratch.wipe(str(work))  # what an interrupted replay left
    folder = work / "submission"
    try:
        _rebuild(system, settings.code_dev, folder)
        # No window: what a recorded answer was given decides nothing in the protocol's path.
        judge = SimpleJudge(paper, folder, model=None, code_only=settings.code_dev)

        def leaf(path, node):
            llm = ScriptedLLM.from_bus(viewer, judge_instance(path))
            judge.model = lambda messages, schema: llm.complete(
                LLMRequest(messages=messages, response_schema=schema, tag="")).text
            return judge.grade_leaf(path, node)

        tree = grade_tree(judge.rubric, leaf)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    replayed = PaperGrade.of(paper.id, "simple", settings.code_dev, tree)
    before = _leaves(recorded["graded_task_tree"])
    after = _leaves(replayed.graded_task_tree.to_dict())
    differ = [f"{p}: {before.get(p)} -> {after.get(p)}" for p in sorted(set(before) | set(after))
              if before.get(p) != after.get(p)]
    return replayed, recorded, differ


def _leaves(node: dict, path: str = "root") -> dict[str, tuple]:
    """path -> (score, valid) of every leaf of a graded tree (PaperBench's JSON shape)."""
    if not node.get("sub_tasks"):
        return {path: (node["score"], node.get("valid_score", True))}
    return {p: v for i, c in enumerate(node["sub_tasks"]) for p, v in _leaves(c, f"{path}/sub_tasks/{i}").items()}
