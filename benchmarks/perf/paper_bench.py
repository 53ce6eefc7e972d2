"""The paper track's reproduction step and score on the shipped paper: the baseline's
submission (what ``aisci paper`` writes with no model) reproduced in the sandbox as
``aisci paper`` does (``cluster.paper_reproduce``), then graded by the scripted judge.

    python -m benchmarks.perf.paper_bench [--repeats 3] [--sandbox bwrap|none]

Last line: ``paper_bench repro_s_median=<x> repro_s=[...] score=<s> invalid=<n>``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from actors.paper_baseline import REPRODUCE_SH, _title, read_setup, render
from actors.runs import RunPolicy
from benchmarks.paperbench import (
    Paper,
    ScriptedJudgeModel,
    judge_submission,
    shipped_papers,
)
from cluster.paper_reproduce import reproduce
from cluster.scratch import wipe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sandbox", choices=["bwrap", "none"], default="bwrap")
    args = ap.parse_args()
    paper = Paper(shipped_papers()["scaling-knn-vs-forest"])
    config, _ = read_setup(paper.paper_text, paper.addendum)
    files = {"reproduce.py": render(config, _title(paper.paper_text)).encode(), "reproduce.sh": REPRODUCE_SH.encode(),
             "README.md": b"# Reproduction (aisci baseline)\n"}
    times, score, invalid = [], None, None
    for _ in range(args.repeats):
        scratch = tempfile.mkdtemp(prefix="paper-bench-")
        try:
            repro, folder, _ = reproduce(files, scratch, 600, RunPolicy(sandbox=args.sandbox), (str(paper.root),))
            assert repro.exit_code == 0, (folder / "reproduce.log").read_text()[-2000:]
            times.append(round(repro.repro_execution_time_s, 2))
            grade = judge_submission(paper, folder, ScriptedJudgeModel())
            score, invalid = round(grade.score, 4), grade.num_invalid_leaf_nodes
        finally:
            wipe(scratch)
    print(f"paper_bench repro_s_median={statistics.median(times)} repro_s={times} score={score} invalid={invalid}")


if __name__ == "__main__":
    main()
