"""The report's section on a paper project (``aisci paper``): the reproduction, the
blacklist monitor, the submission check and the PaperBench grade with every leaf."""

from __future__ import annotations

import json

from bus import BusError, Project

from .recorded import recorded_object

__all__ = ["paper_section"]


def _read(system, path: str):
    try:  # exists() first: a read of a missing file is a `refused` event, noise in every task's project
        return json.loads(system.read(path)) if system.exists(path) else None
    except (BusError, ValueError):
        return None


def _leaves(node: dict, depth: int = 0) -> list[str]:
    mark = "" if node.get("valid_score", True) else " (not judged)"
    head = f"{'  ' * depth}- **{node['score']:.2f}** (weight {node['weight']}) {node['requirements'][:160]}"
    if not node.get("sub_tasks"):
        why = " ".join(str(node.get("explanation", "")).split())[:300]
        return [f"{head}{mark} [{node.get('task_category')}]: {why}"]
    return [head] + [line for c in node["sub_tasks"] for line in _leaves(c, depth + 1)]


def paper_section(project: Project) -> list[str]:
    """Markdown lines; none for a project that is not a paper's."""
    system = project.as_role("system", "report")
    repro = _read(system, "report/reproduction.json")
    grade = recorded_object(project, "paper_graded")  # by its event's hash: report/ files are not the grade
    blacklist = _read(system, "report/blacklist.json")
    check = _read(system, "report/selfcheck.json")  # the agents' last self-check (check_reproduction)
    if repro is None and grade is None and blacklist is None:
        return []
    lines = ["## Paper reproduction (PaperBench)", ""]
    if system.exists("task/rubric.json"):
        lines += ["- **The agents were shown the rubric** (`--show-rubric`): not PaperBench's setting.", ""]
    if blacklist:
        lines += [f"- **Blacklisted sources named** in the agents' model calls ({len(blacklist)}): PaperBench "
                  "disqualifies such a submission."] + [f"  - {h}" for h in blacklist] + [""]
    if repro and repro.get("refused"):
        lines += ["- **Submission refused**: it names absolute paths of the workspace:"] + \
                 [f"  - {r}" for r in repro["refused"]] + [""]
    elif repro:
        ran = "missing" if not repro["repro_script_exists"] else ("timed out" if repro["timed_out"] else
                                                                  f"exit code {repro['exit_code']}")
        lines += [f"- reproduce.sh: {ran}, {repro['repro_execution_time_s']:.1f} s, log "
                  f"{repro['log_bytes']} bytes (`report/reproduce.log`); submission: git commit "
                  f"{repro.get('commit') or '-'} ({repro.get('commits', 0)} commits, one per bus version)", ""]
    if isinstance(check, dict) and "status" in check:
        said = {"ok": "exit code 0", "failed": f"exit code {check.get('exit_code')}", "timeout": "timed out",
                "missing": "no reproduce.sh", "refused": "refused"}.get(check["status"], str(check["status"])[:40])
        lines += [f"- The agents' last self-check before finishing (`check_reproduction`): {said}, "
                  f"{float(check.get('duration_s') or 0):.1f} s, {len(check.get('outputs') or {})} files written "
                  "(`report/selfcheck.json`; an agent writes it: for information, not the grade)", ""]
    if grade is None:
        lines += ["- Not graded: no judge model configured (`aisci paper --judge openai:<model>`).", ""]
    else:
        lines += [f"- PaperBench{' Code-Dev' if grade['code_only'] else ''} score: **{grade['score']:.3f}** "
                  f"({grade['num_leaf_nodes']} leaves, {grade['num_invalid_leaf_nodes']} not judged; judge: "
                  f"{grade.get('judge', '?')})", "", "### Graded task tree", ""]
        lines += _leaves(grade["graded_task_tree"]) + [""]
    return lines
