"""A sweep's results from the index: one scan of the members' events.

Per project: its grade (the ``graded`` event; a paper project's PaperBench score, the
``paper_graded`` event, beside it), LLM tokens (``llm_call`` events) and
GPU-hours (``experiment`` events: GPUs x duration). ``leaderboard`` groups them by
task, setting and model: the best grade over the seeds, the mean score, and what the
group spent.
"""

from __future__ import annotations

import math
from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.mlebench.report import MEDALS
from bus import Bus

from .sweep import members


def project_results(bus: Bus, sweep: str) -> list[dict]:
    coords = {m["project"]: m for m in members(bus, sweep)}
    present = [p for p in coords if p in set(bus.projects())]
    rows = {p: {**coords[p], "tokens": 0, "gpu_hours": 0.0, "score": None, "medal": None, "is_lower_better": None,
                "paper_score": None}
            for p in coords}
    if present:
        table = bus.index.scan(present, columns=["project", "kind", "metrics", "prompt_tokens", "completion_tokens"])
        table = table.filter(pc.is_in(table.column("kind"), value_set=pa.array(["graded", "experiment", "llm_call",
                                                                                 "paper_graded"])))
        for r in table.to_pylist():
            row, m = rows[r["project"]], dict(r["metrics"] or [])
            if r["kind"] == "llm_call":
                row["tokens"] += (r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0)
            elif r["kind"] == "experiment":
                row["gpu_hours"] += m.get("gpus", 0.0) * m.get("duration_s", 0.0) / 3600
            elif r["kind"] == "paper_graded":  # a paper project (`aisci paper`): PaperBench's score
                row["paper_score"] = m.get("score")
            elif r["kind"] == "graded":  # the last grade counts (a project graded again after a resume)
                score = m.get("score")
                row["score"] = None if score is None or math.isnan(score) else score
                row["medal"] = MEDALS[int(m.get("medal_rank", 0.0))]
                row["is_lower_better"] = bool(m.get("is_lower_better", m.get("lower_is_better", 0.0)))
    return list(rows.values())


def leaderboard(bus: Bus, sweep: str) -> pa.Table:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in project_results(bus, sweep):
        groups[(row["task"], row["setting"], row["model"])].append(row)
    out = []
    for (task, setting, model), rows in sorted(groups.items()):
        graded = [r for r in rows if r["score"] is not None]
        best = None
        if graded:
            sign = -1 if graded[0]["is_lower_better"] else 1
            best = max(graded, key=lambda r: (MEDALS.index(r["medal"]), sign * r["score"]))
        out.append({
            "task": task, "setting": setting, "model": model,
            # a paper's grade is its PaperBench score (a paper row has no MLE-bench score: "0/1" was shown)
            "graded": f"{len(graded) + sum(r.get('paper_score') is not None for r in rows)}/{len(rows)}",
            "best_score": best["score"] if best else None, "best_medal": best["medal"] if best else None,
            "best_seed": best["seed"] if best else None,
            "mean_score": round(sum(r["score"] for r in graded) / len(graded), 6) if graded else None,
            "medals": sum(r["medal"] not in (None, "none") for r in rows),
            "best_paper_score": max((r["paper_score"] for r in rows if r.get("paper_score") is not None),
                                    default=None),
            "tokens": sum(r["tokens"] for r in rows),
            "gpu_hours": round(sum(r["gpu_hours"] for r in rows), 4),
        })
    return pa.Table.from_pylist(out) if out else pa.table({"task": pa.array([], pa.string())})
