"""The baseline (no model) for a paper project: read the paper, write a reproduction.

Its phases, as tool calls the real agent loop executes (``actors.baseline.BaselineLLM``
hands the phases ``paper*`` here; ``actors.paper_policy`` orders them):

- ``paperread`` (analyst): reads task/paper.md and task/addendum.md and writes
  analysis/paper/structure.md (the paper's sections) and analysis/paper/setup.md (the
  experimental setup it could make out, each value with the sentence it came from);
- ``papermethod``, ``paperexperiments``, ``paperbaselines`` (analysts, at the same time):
  each keeps the sections of its aspect in analysis/paper/<aspect>.md;
- ``paperplan`` (planner): the synthesis, plan/paper_tasks.md (prioritised tasks, what the
  addendum puts out of scope);
- ``paperwrite`` (writer): writes submission/: the template that fits the paper's kind of
  claim (``actors/templates/paper_preprocessing_cv.py.tmpl``: a preprocessing step helps one
  model and not another, under k-fold cross-validation, on scikit-learn's bundled
  datasets) filled in with the setup read from the paper (``render``), reproduce.sh, and
  a README saying where each setting came from;
- ``papercheck`` (writer): reproduces the submission as the grader will
  (``check_reproduction``) and finishes saying how it went (the baseline has no fix to try).

What it reads is the paper and its addendum, never the rubric (agents are not given it).
A paper of another kind gets a README and a reproduce.sh that say the baseline has no
template for it: a baseline, labelled as one, not a pretence.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from string import Template

from .llm.protocol import ToolCall

__all__ = ["PAPER_PLANS", "read_setup", "render"]

TEMPLATE = Path(__file__).parent / "templates" / "paper_preprocessing_cv.py.tmpl"  # a string.Template

REPRODUCE_SH = """#!/usr/bin/env bash
# Runs the whole reproduction (aisci's baseline): results.csv and one line per configuration.
set -euo pipefail
cd "$(dirname "$0")"
python3 reproduce.py results.csv
"""

NO_TEMPLATE_SH = """#!/usr/bin/env bash
# aisci's baseline has no template for this paper's kind of claim (see README.md).
echo "aisci baseline: no reproduction template fits this paper: {why}"
exit 1
"""


def _call(tool: str, **arguments) -> ToolCall:
    return ToolCall(id=f"b_{tool}", name=tool, arguments=json.dumps(arguments))


def _find(pattern: str, text: str, flags=re.IGNORECASE) -> tuple[str | None, str]:
    """The first group of ``pattern`` in ``text``, and the line it was found on."""
    m = re.search(pattern, text, flags)
    if not m:
        return None, ""
    start, end = text.rfind("\n", 0, m.start()) + 1, text.find("\n", m.end())
    return m.group(1), text[start: end if end >= 0 else None].strip()


def read_setup(paper: str, addendum: str) -> tuple[dict | None, list[str]]:
    """The setup of a preprocessing-under-cross-validation paper, read from its text.

    Returns (config for the template, or None where the paper is not of that kind; the
    evidence: one line per value, the sentence it came from, or why it is None)."""
    text = f"{addendum}\n{paper}"
    evidence: list[str] = []
    names = list(dict.fromkeys(re.findall(r"\bload_([a-z_]+?)\b(?!\w)", text)))
    names = [n for n in names if n not in ("data",)]
    if not names:
        return None, ["no scikit-learn dataset (`load_<name>`) is named in the paper or its addendum"]
    evidence.append(f"datasets {names}: the `load_<name>` functions the paper and addendum name")
    models: dict[str, dict] = {}
    if re.search(r"nearest[- ]neighbou?r|k-?NN", text, re.IGNORECASE):
        k, line = _find(r"\bk\s*=\s*(\d+)", paper)
        models["knn"] = {"n_neighbors": int(k or 5)}
        evidence.append(f"knn n_neighbors={k or 5}: " + (line or "not stated; scikit-learn's default"))
    if re.search(r"random forest", text, re.IGNORECASE):
        trees, line = _find(r"(\d+)\s+trees", paper)
        seed, line2 = _find(r"fixed seed\s*\((\d+)\)", paper)
        models["forest"] = {"n_estimators": int(trees or 100), "random_state": int(seed or 0)}
        evidence.append(f"forest n_estimators={trees or 100}: " + (line or "not stated; scikit-learn's default"))
        evidence.append(f"forest random_state={seed or 0}: " + (line2 or "not stated"))
    if not models:
        return None, evidence + ["no model the template knows (k-nearest neighbours, random forest) is named"]
    if not re.search(r"standardi[sz]|StandardScaler|zero mean and unit variance", text, re.IGNORECASE):
        return None, evidence + ["no standardization is named: the template compares raw and standardized inputs"]
    folds, line = _find(r"(\d+)-fold", paper)
    cv_seed, line2 = _find(r"shuffl\w*\s*\(seed\s*(\d+)\)", paper)
    evidence.append(f"folds={folds or 5}: " + (line or "not stated; 5"))
    evidence.append(f"cv seed={cv_seed or 0}: " + (line2 or "not stated; 0"))
    config = {"datasets": names, "models": models, "folds": int(folds or 5), "cv_seed": int(cv_seed or 0)}
    return config, evidence


_MODEL_CODE = {
    "knn": "lambda: KNeighborsClassifier(n_neighbors={n_neighbors})",
    "forest": "lambda: RandomForestClassifier(n_estimators={n_estimators}, random_state={random_state}, n_jobs=1)",
}


def render(config: dict, title: str) -> str:
    """The template's code with the setup read from the paper written into it."""
    names = config["datasets"]
    return Template(TEMPLATE.read_text()).substitute(
        TITLE=title.replace('"', "'"), DATASET_NAMES=", ".join(names), FOLDS=config["folds"],
        CV_SEED=config["cv_seed"], IMPORTS=", ".join(f"load_{n}" for n in names),
        DATASETS=", ".join(f'"{n}": load_{n}' for n in names),
        MODELS="\n" + "".join(f'    "{m}": {_MODEL_CODE[m].format(**s)},\n' for m, s in config["models"].items()))


def _title(paper: str) -> str:
    return next((line.lstrip("#").strip() for line in paper.splitlines() if line.startswith("# ")), "the paper")


def _sections(paper: str) -> str:
    heads = [line.strip() for line in paper.splitlines() if line.startswith("#")]
    return "# The paper's structure\n\n" + "\n".join(f"- {h.lstrip('#').strip()}" for h in heads) + "\n"


def _paperread(step: int, results: list[str], params: dict) -> list[ToolCall]:
    if step == 0:
        return [_call("read_file", path="task/paper.md"), _call("read_file", path="task/addendum.md")]
    if step == 1:
        paper, addendum = (results + ["", ""])[:2]
        config, evidence = read_setup(paper, addendum)
        setup = ("# The experimental setup, as read\n\n" + "\n".join(f"- {e}" for e in evidence) +
                 f"\n\nTemplate: {'preprocessing under cross-validation' if config else 'none fits'}\n")
        return [_call("write_file", path="analysis/paper/structure.md", content=_sections(paper),
                      summary="the paper's sections"),
                _call("write_file", path="analysis/paper/setup.md", content=setup,
                      summary="the setup read from the paper and addendum")]
    return [_call("finish", summary="wrote analysis/paper/structure.md and analysis/paper/setup.md")]


def _paperwrite(step: int, results: list[str], params: dict) -> list[ToolCall]:
    if step == 0:
        return [_call("read_file", path="task/paper.md"), _call("read_file", path="task/addendum.md")]
    if step == 1:
        paper, addendum = (results + ["", ""])[:2]
        config, evidence = read_setup(paper, addendum)
        notes = "\n".join(f"- {e}" for e in evidence)
        if config is None:
            why = evidence[-1]
            return [_call("write_file", path="submission/README.md", summary="no template fits", content=(
                        f"# No reproduction (aisci baseline)\n\naisci's baseline has no template for this paper: "
                        f"{why}.\n\nWhat it read:\n{notes}\n")),
                    _call("write_file", path="submission/reproduce.sh", content=NO_TEMPLATE_SH.format(why=why),
                          summary="says no template fits")]
        readme = ("# Reproduction (aisci baseline)\n\n`bash reproduce.sh` runs `reproduce.py`: for each dataset "
                  f"({', '.join(config['datasets'])}) and model ({', '.join(config['models'])}), "
                  f"{config['folds']}-fold stratified cross-validated accuracy on raw and standardized features "
                  "(the scaler fitted inside each training fold), and the gain of standardization. It prints one "
                  "line per configuration and gain and writes `results.csv`.\n\nThe settings in `reproduce.py` were "
                  f"read from the paper and its addendum:\n{notes}\n")
        return [_call("write_file", path="submission/reproduce.py", content=render(config, _title(paper)),
                      summary="baseline template (preprocessing under cross-validation), the paper's setup"),
                _call("write_file", path="submission/reproduce.sh", content=REPRODUCE_SH,
                      summary="runs the reproduction"),
                _call("write_file", path="submission/README.md", content=readme, summary="what the submission does")]
    return [_call("finish", summary="wrote submission/ (reproduce.sh, reproduce.py, README.md)")]


def _papercheck(step: int, results: list[str], params: dict) -> list[ToolCall]:
    if step == 0:
        return [_call("check_reproduction")]
    said = (results[0].splitlines() or ["no answer"])[0] if results else "no answer"
    return [_call("finish", summary=f"self-check: {said}"[:300])]


def _split(paper: str) -> list[tuple[str, str]]:
    """(heading, text) of each section of a markdown paper."""
    sections, head, lines = [], "", []
    for line in paper.splitlines():
        if line.startswith("#"):
            if head or any(x.strip() for x in lines):
                sections.append((head, "\n".join(lines).strip()))
            head, lines = line.lstrip("#").strip(), []
        else:
            lines.append(line)
    sections.append((head, "\n".join(lines).strip()))
    return sections


# A reader per aspect, as a model's readers would split the paper: the sections (and, for
# baselines, the sentences) it keeps.
ASPECTS = {
    "method": r"method|setup|model|approach|algorithm",
    "experiments": r"experiment|result|evaluat|protocol|table|appendix",
    "baselines": r"baseline|compar|related|ablation",
}


def _reader(aspect: str):
    def plan(step: int, results: list[str], params: dict) -> list[ToolCall]:
        if step == 0:
            return [_call("read_file", path="task/paper.md"), _call("read_file", path="analysis/paper/structure.md")]
        if step == 1:
            pattern = re.compile(ASPECTS[aspect], re.IGNORECASE)
            kept = [f"## {h}\n\n{t}" for h, t in _split(results[0] if results else "") if h and pattern.search(h)]
            if aspect == "baselines":  # sentences naming a comparison, wherever they are
                sentences = re.split(r"(?<=[.!?])\s+", " ".join((results[0] if results else "").split()))
                kept += [f"- {x}" for x in sentences if pattern.search(x)][:20]
            text = f"# The paper's {aspect}, as read\n\n" + ("\n\n".join(kept) or "(nothing found)") + "\n"
            return [_call("write_file", path=f"analysis/paper/{aspect}.md", content=text,
                          summary=f"{aspect}: {len(kept)} passages")]
        return [_call("finish", summary=f"wrote analysis/paper/{aspect}.md")]
    return plan


def _paperplan(step: int, results: list[str], params: dict) -> list[ToolCall]:
    """The synthesis: a prioritised task list from the readers' notes and the addendum."""
    if step == 0:
        return [_call("read_file", path="task/addendum.md"), _call("read_file", path="analysis/paper/setup.md"),
                *[_call("read_file", path=f"analysis/paper/{a}.md") for a in ASPECTS]]
    if step == 1:
        addendum, setup = (results + ["", ""])[:2]
        notes = {a: (results[2 + i] if len(results) > 2 + i else "") for i, a in enumerate(ASPECTS)}
        out_of_scope = [line.strip("- ").strip() for line in addendum.splitlines() if "out of scope" in line.lower()]
        read = [a for a, t in notes.items() if t and not t.startswith("ERROR")]
        tasks = ["1. Implement the setup read in analysis/paper/setup.md (data, models, preprocessing).",
                 "2. Implement the evaluation protocol of analysis/paper/experiments.md.",
                 "3. Run every configuration of the paper's main table from reproduce.sh, printing and writing "
                 "results in the addendum's format.",
                 "4. Compare with the baselines named in analysis/paper/baselines.md.",
                 "5. Write README.md: what reproduce.sh runs and how the numbers compare with the paper."]
        text = ("# Reproduction tasks, most important first\n\n" + "\n".join(tasks) +
                "\n\n## Out of scope (the addendum)\n\n" + ("\n".join(f"- {x}" for x in out_of_scope) or "- none")
                + f"\n\nFrom the readers' notes: {', '.join(read) or 'none could be read'}; setup: "
                f"{'read' if setup and not setup.startswith('ERROR') else 'not read'}.\n")
        return [_call("write_file", path="plan/paper_tasks.md", content=text, summary="prioritised reproduction tasks")]
    return [_call("finish", summary="wrote plan/paper_tasks.md")]


PAPER_PLANS = {"paperread": _paperread, "paperwrite": _paperwrite, "paperplan": _paperplan,
               "papercheck": _papercheck, **{f"paper{a}": _reader(a) for a in ASPECTS}}
