"""The full LLM-driven loop: the scripted model makes every orchestrator decision (as
structured output) and writes the code; the real orchestrator, agent pool, sandboxed
experiments and bus take it to a graded submission."""

import json
import shutil

import pytest

from actors.llm.config import LLMConfig
from actors.llm.scripted import reply
from benchmarks.mlebench.task import shipped_tasks
from cluster.run import run_task

pytestmark = pytest.mark.slow  # a whole project or a cluster of its own: `pytest -m 'not slow'` skips it

TRAIN = '''import json
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

train, test = pd.read_csv("../../task/train.csv"), pd.read_csv("../../task/test.csv")
X, y = train.drop(columns=["id", "target"]), train["target"]
model = LogisticRegression(max_iter=3000)
cv = cross_val_score(model, X, y, cv=3).mean()
model.fit(X, y)
pd.DataFrame({"id": test["id"], "target": model.predict(test.drop(columns=["id"]))}).to_csv("submission.csv", index=False)
json.dump({"cv_score": float(cv)}, open("metrics.json", "w"))
'''


def decide(action, reason, role=None, goal=""):
    return reply(text=json.dumps({"action": action, "role": role, "goal": goal, "reason": reason})).model_dump()


def call(tool, **args):
    return reply(calls=[(tool, args)]).model_dump()


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_scripted_model_drives_the_whole_loop_to_a_graded_submission(ray_cluster, bus):
    script = {
        "orchestrator": [
            reply(text="Let's write some code first!").model_dump(),  # not a decision: shown back, retried
            decide("dispatch", "no code yet", "coder", "Write code/train.py: logistic regression, CV score, predictions"),
            decide("dispatch", "the code exists", "experimenter", "Run code/train.py once"),
            decide("dispatch", "lr scored well", "writer", "Submit the predictions of experiments/lr"),
            decide("stop", "submitted the best predictions"),
        ],
        "coder-1": [call("read_file", path="task/description.md"),
                    call("write_file", path="code/train.py", content=TRAIN, summary="logistic regression pipeline"),
                    call("finish", summary="wrote code/train.py")],
        "experimenter-1": [call("launch_experiment", name="lr", command="python3 ../../code/train.py"),
                           call("finish", summary="launched lr")],
        "writer-1": [call("copy_file", src="experiments/lr/submission.csv", dst="submission/submission.csv"),
                     call("finish", summary="submitted lr")],
    }
    out = run_task(bus, str(shipped_tasks()["digits"]), project="digits-llm",
                   llm=LLMConfig(backend="scripted", script=script), budget_s=600)
    assert out.reason == "submitted the best predictions; submission: submission/submission.csv is in place"
    assert out.grade.valid_submission and out.grade.score > 0.9, out.grade
    events = bus.project("digits-llm").events().to_pylist()
    decisions = [e["summary"] for e in events if e["kind"] == "decision"]
    assert decisions == ["no code yet", "the code exists", "lr scored well", "submitted the best predictions"]
    llm_calls = [e for e in events if e["kind"] == "llm_call"]
    assert {e["instance"] for e in llm_calls} >= {"orchestrator-digits-llm", "coder-coder-1", "writer-writer-1"}
    assert out.tokens > 0
