"""A small project for the scripted model: every subtask's replies fixed in advance.

Used where a whole project must run many times, fast and identically: the kill-and-
resume test (``tests/cluster/test_resume.py``) and the scale benchmark
(``benchmarks/perf/scale_bench.py``). With the baseline policy it goes analyse ->
implement -> experiment (three runs of a pure-Python "model", ~50 ms each) -> submit,
on any binary classification task (breast-cancer).
"""

from __future__ import annotations

from actors.llm.config import LLMConfig
from actors.llm.scripted import reply

TRAIN = """import csv, json, sys
p = float(sys.argv[1])
rows = list(csv.DictReader(open("../../task/train.csv")))
test = list(csv.DictReader(open("../../task/test.csv")))
rate = sum(float(r["target"]) for r in rows) / len(rows)
with open("submission.csv", "w") as f:
    f.write("id,target\\n" + "".join(f"{r['id']},{min(rate * p, 1.0):.6f}\\n" for r in test))
json.dump({"cv_score": 0.5 + p / 10}, open("metrics.json", "w"))
print("p =", p, "rows =", len(rows))
"""
PARAMS = (0.5, 2.0, 1.0)  # run p2 (2.0) scores best


def _calls(*calls):
    return reply(calls=list(calls))


def script() -> dict:
    return {
        "analyse-1": [_calls(("read_file", {"path": "task/description.md"})),
                      _calls(("write_file", {"path": "analysis/data.md", "content": "# Data\nbinary target\n",
                                                       "summary": "the data"})),
                      _calls(("append_log", {"path": "logs/analysis.md", "text": "- looked at the task"})),
                      _calls(("finish", {"summary": "wrote analysis/data.md"}))],
        "implement-1": [_calls(("write_file", {"path": "code/train.py", "content": TRAIN, "summary": "rate model"})),
                        _calls(("append_log", {"path": "logs/implementation.md", "text": "- code/train.py: rate model"})),
                        _calls(("finish", {"summary": "wrote code/train.py"}))],
        "experiment-1": [_calls(*[("launch_experiment", {"name": f"p{i}", "command": f"python3 ../../code/train.py {p}",
                                                         "timeout_s": 60}) for i, p in enumerate(PARAMS)]),
                         _calls(("append_log", {"path": "logs/experiments.md", "text": "- launched p0, p1, p2"})),
                         _calls(("finish", {"summary": f"asked for {len(PARAMS)} runs"}))],
        "submit-1": [_calls(("copy_file", {"src": "experiments/p1/submission.csv", "dst": "submission/submission.csv",
                                            "summary": "predictions of p1"})),
                     _calls(("finish", {"summary": "submitted p1"}))],
    }


def scripted_config() -> LLMConfig:
    """The script as a model config: replies picked by step, so one shared model serves
    every project and a re-dispatched subtask replays its script."""
    return LLMConfig(backend="scripted", script={tag: [r.model_dump() for r in rs] for tag, rs in script().items()},
                     script_by_step=True)
