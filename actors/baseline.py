"""The built-in baseline "model": deterministic, template-based tool calls.

With no model configured, this drives the *same* orchestrator, agents, experiments and
bus as a real LLM would: each reply is a tool call the real agent loop executes. It
writes one pipeline (``actors/templates/train.py`` and its loader ``taskdata.py``,
which read ``task/task.json``: tabular, text or image data, one or several target
columns, labels, values or class probabilities) and launches a small grid of models
per data kind and task kind (``GRIDS``). It is a baseline, labelled as one (backend
``baseline``).

The orchestrator's baseline policy tells it what to do through the subtask: the phase
is the subtask id's prefix (``analyse-1``, ``implement-1``, ...; a node of the
solution tree: ``draft-1``, ``improve-2``, ``debug-1``, ``ensemble-1``, one run each,
named after the node), and parameters ride on a line ``BASELINE: {json}`` of the subtask's context.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .llm.protocol import LLMReply, LLMRequest, ToolCall
from .memory import PRIOR_JSON, order_grid
from .paper_baseline import PAPER_PLANS

_TEMPLATES = Path(__file__).parent / "templates"
TEMPLATES = {"code/train.py": _TEMPLATES / "train.py", "code/taskdata.py": _TEMPLATES / "taskdata.py",
             "code/ensemble.py": _TEMPLATES / "ensemble.py"}
_SUMMARIES = {"code/train.py": "baseline pipeline: CV score, fit, predict; --model/--params",
              "code/taskdata.py": "baseline loader: task.json's data as arrays; the submission",
              "code/ensemble.py": "baseline ensemble: runs' predictions averaged or voted, scored by CV"}
_PARAMS = re.compile(r"^BASELINE: (\{.*\})$", re.M)

# (data kind, task kind) -> the runs: (model of train.py, its parameters).
GRIDS = {
    ("tabular", "classification"): [("logreg", {"C": 0.1}), ("logreg", {"C": 1.0}), ("logreg", {"C": 10.0}),
                                    ("forest", {"n_estimators": 200}), ("hgb", {}), ("knn", {"n_neighbors": 7})],
    ("tabular", "regression"): [("ridge", {"alpha": 1.0}), ("ridge", {"alpha": 10.0}), ("ridge", {"alpha": 100.0}),
                                ("forest", {"n_estimators": 200}), ("hgb", {"max_iter": 100}),
                                ("knn", {"n_neighbors": 15})],
    ("text", "classification"): [("tfidf-logreg", {"C": 1.0}), ("tfidf-logreg", {"C": 10.0}),
                                 ("char-logreg", {"C": 3.0}), ("nb", {"alpha": 0.1}), ("nb", {"alpha": 1.0})],
    ("text", "regression"): [("tfidf-ridge", {"alpha": 1.0}), ("tfidf-ridge", {"alpha": 10.0}),
                             ("char-ridge", {"alpha": 3.0})],
    # (no boosting on pixels: one tree per class per round, minutes per fit on 20 classes)
    ("images", "classification"): [("logreg", {"C": 0.1, "size": 16}), ("logreg", {"C": 0.1}),
                                   ("forest", {"n_estimators": 300}), ("knn", {"n_neighbors": 5}),
                                   ("knn", {"n_neighbors": 10, "size": 16})],
    ("images", "regression"): [("ridge", {"alpha": 10.0}), ("ridge", {"alpha": 100.0}),
                               ("forest", {"n_estimators": 300}), ("knn", {"n_neighbors": 10})],
}


def baseline_params(request: LLMRequest) -> dict:
    for m in request.messages:
        if m["role"] == "user" and (found := _PARAMS.search(str(m.get("content") or ""))):
            return json.loads(found.group(1))
    return {}


def _task_facts(text: str) -> dict:
    """task/task.json as read (an object), or {} where it is missing or was cut."""
    try:
        facts = json.loads(text)
    except ValueError:
        return {}
    return facts if isinstance(facts, dict) else {}


def _analysis(facts: dict, header: str, statement: str) -> str:
    """analysis/data.md: what task.json says of the data, and the training table's header."""
    if not facts:
        return f"# Data\n\ntask/task.json could not be read whole: read it in parts.\n\n## Task\n\n{statement}\n"
    inputs, targets = facts.get("inputs") or {}, [str(t) for t in facts.get("target_columns") or []]
    shown = ", ".join(f"`{t}`" for t in targets[:20]) + (f" ... ({len(targets)} in all)" if len(targets) > 20 else "")
    lines = ["# Data\n", f"Data kind: {facts.get('data') or 'not derived'}.",
             f"Id column: `{facts.get('id_column')}`; target column(s): {shown} "
             f"({facts.get('predicts')}s, scored by {facts.get('metric')}, "
             f"{'lower' if facts.get('is_lower_better') else 'higher'} is better)."]
    if not inputs:
        lines.append(f"The data could not be derived: {facts.get('data_unknown')}")
    else:
        columns = header.split(",") if header else []
        lines.append(f"Training table: task/{inputs.get('train_csv')} ({len(columns)} columns: "
                     f"{', '.join(columns[:30])}{' ...' if len(columns) > 30 else ''}); its id column "
                     f"`{inputs.get('train_id_column')}`.")
        if inputs.get("label_column"):
            lines.append(f"Labels: the class names in `{inputs['label_column']}`, one target column per class.")
        lines.append(f"Test rows: task/{inputs.get('test_csv')}.")
        if inputs.get("text_columns"):
            lines.append(f"Text column(s): {', '.join(f'`{c}`' for c in inputs['text_columns'])}.")
        for split in ("train", "test"):
            files = inputs.get(f"{split}_images")
            if files:
                lines.append(f"{split.title()} images: task/{files['folder']}/<id>{files['suffix']}.")
        if inputs.get("feature_columns"):
            lines.append(f"{len(inputs['feature_columns'])} feature column(s).")
    return "\n".join(lines) + f"\n\n## Task\n\n{statement}\n"


def _call(tool: str, **arguments) -> ToolCall:
    return ToolCall(id=f"b_{tool}", name=tool, arguments=json.dumps(arguments))


class BaselineLLM:
    name = "baseline"

    def complete(self, request: LLMRequest) -> LLMReply:
        phase = request.tag.split("-")[0]
        step = sum(1 for m in request.messages if m["role"] == "assistant")
        results = [str(m.get("content") or "") for m in request.messages if m["role"] == "tool"]
        plan = getattr(self, f"_{phase}", None) or PAPER_PLANS.get(phase)  # a paper project's phases
        calls = plan(step, results, baseline_params(request)) if plan else [_call("finish", summary=f"no baseline for {phase}")]
        return LLMReply(tool_calls=calls, model="baseline-templates", backend="baseline")

    # One method per phase: the calls of each step, given the tool results so far.

    def _analyse(self, step, results, params):
        if step == 0:
            return [_call("read_file", path="task/description.md"), _call("read_file", path="task/task.json")]
        facts = _task_facts(results[1] if len(results) > 1 else "")
        train = (facts.get("inputs") or {}).get("train_csv")
        if step == 1 and train:
            return [_call("read_file", path=f"task/{train}", start=1, end=3)]
        if step == (2 if train else 1):
            header = results[2].splitlines()[0] if train and len(results) > 2 and results[2] else ""
            text = _analysis(facts, header, results[0] if results else "")
            return [_call("write_file", path="analysis/data.md", content=text,
                          summary=f"{facts.get('data') or 'unknown'} data; id {facts.get('id_column')!r}; "
                                  f"targets {', '.join(map(str, facts.get('target_columns') or []))[:120]}")]
        return [_call("finish", summary="wrote analysis/data.md (data kind, id and target columns, task statement)")]

    def _implement(self, step, results, params):
        if step == 0:
            return [_call("write_file", path=path, content=src.read_text(), summary=_SUMMARIES[path])
                    for path, src in TEMPLATES.items()]
        if step == 1:
            return [_call("append_log", path="logs/implementation.md",
                          text="- code/train.py (+ code/taskdata.py): baseline pipeline for tabular, text and "
                               "image data (linear models, forests, boosting, knn, TF-IDF, naive Bayes); "
                               "code/ensemble.py combines runs' predictions")]
        return [_call("finish", summary="wrote code/train.py, code/taskdata.py and code/ensemble.py")]

    def _experiment(self, step, results, params):
        if step == 0:  # what similar earlier projects found (memory across projects), if this one has it
            return [_call("read_file", path=PRIOR_JSON)]
        if step == 1:
            grid = GRIDS[(params.get("data") or "tabular", params.get("kind", "classification"))]
            grid = order_grid(grid, _task_facts(results[0] if results else "") or None)
            return [_call("launch_experiment", name=f"{model}-{i}", timeout_s=900, cpus=1,
                          command=f"python3 ../../code/train.py --model {model} --params '{json.dumps(p)}'")
                    for i, (model, p) in enumerate(grid)]
        return [_call("finish", summary=f"asked for {len(results) - 1} runs")]

    def _draft(self, step, results, params):
        """A node of the solution tree: one run of its model and parameters, named after it."""
        if step == 0:
            return [_launch(params)]
        return [_call("finish", summary=f"asked for {params.get('run')}: {results[0][:200] if results else ''}")]

    _improve = _draft

    def _ensemble(self, step, results, params):
        """A node combining scored nodes: one run of code/ensemble.py over their runs."""
        if step == 0:
            runs = ",".join(params.get("members") or [])
            return [_call("launch_experiment", name=params["run"], timeout_s=900, cpus=1,
                          command=f"python3 ../../code/ensemble.py --runs {runs}")]
        return [_call("finish", summary=f"asked for {params.get('run')}: {results[0][:200] if results else ''}")]

    def _debug(self, step, results, params):
        """Read the failed run's result and spec (a model's debugger would fix code/ and
        check the fix with run; the baseline's fix is the one the policy recognised, in
        the node's parameters), then run the node."""
        if step == 0:
            parent = params.get("parent")  # the baseline's node runs under its own id
            return [_call("read_file", path=f"experiments/{parent}/result.json"),
                    _call("read_file", path=f"experiments/{parent}/spec.json")]
        if step == 1:
            return [_call("append_log", path="logs/debug.md",
                          text=f"- {params.get('node')}: fixed {params.get('parent')} with "
                               f"{params.get('model')} {json.dumps(params.get('params') or {})}"), _launch(params)]
        return [_call("finish", summary=f"re-ran the fix of {params.get('parent')} as {params.get('run')}")]

    def _submit(self, step, results, params):
        best = params.get("best")
        if step == 0:  # copy, then check as the grader will (the writer's finish is refused while invalid)
            return [_call("copy_file", src=f"experiments/{best}/submission.csv", dst="submission/submission.csv",
                          summary=f"predictions of {best}"), _call("check_submission", path="submission/submission.csv")]
        copied, checked = (results + ["", ""])[:2]
        if copied.startswith("ERROR") or checked.startswith("invalid"):
            # A refused finish is asked again as it was: the repeat guard then ends the subtask with the reason.
            why = copied if copied.startswith("ERROR") else checked
            return [_call("finish", summary=f"could not submit the predictions of {best}: {why[:200]}")]
        return [_call("finish", summary=f"submitted the predictions of {best} ({checked[:200]})")]


def _launch(params: dict) -> ToolCall:
    """The run of a tree node: its model and parameters through the pipeline."""
    return _call("launch_experiment", name=params["run"], timeout_s=900, cpus=1,
                 command=f"python3 ../../code/train.py --model {params['model']} "
                         f"--params '{json.dumps(params.get('params') or {})}'")
