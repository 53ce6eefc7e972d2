"""The end of a project: its grade (against the private answers, outside every agent's
reach), recorded so that nothing a role writes can change it, and its report.

The grade is kept in the version store and named by the hash on its ``graded`` event
(the commit point); ``report/grade.json`` is a copy for people and agents to read. Who
reads a grade back (``aisci status``, a resume of an ended project) reads it by that
hash, never from the file.
"""

from __future__ import annotations

from benchmarks.mlebench.task import CompetitionReport, Task, TaskOptions
from bus import Bus

from .recorded import recorded_object
from .report import write_report

__all__ = ["finish_project", "grade_of"]


def finish_project(bus: Bus, project: str, task_dir: str, options: TaskOptions | None = None) -> CompetitionReport:
    """Grade ``submission/submission.csv``, record the grade (a ``graded`` event: what
    leaderboards query), write the report; returns the grade (MLE-bench's
    ``CompetitionReport``)."""
    proj = bus.project(project)
    grade = Task(task_dir, options).grade(proj.dir / "submission" / "submission.csv")
    data = grade.model_dump_json(indent=1)
    system = proj.as_role("system", "grader")
    digest = proj.put_object(data.encode())
    system.write("report/grade.json", data, summary=f"{grade.medal} medal, score {grade.score}")
    system.record("graded", f"{grade.medal} medal, score {grade.score}", hash=digest, metrics={
        "score": float(grade.score) if grade.score is not None else float("nan"),
        "valid_submission": float(grade.valid_submission), "medal_rank": float(grade.medal_rank),
        "is_lower_better": float(grade.is_lower_better)})
    write_report(proj, grade)
    return grade


def grade_of(bus: Bus, project: str) -> CompetitionReport | None:
    """The project's last recorded grade, or None if it was never graded."""
    data = recorded_object(bus.project(project), "graded")
    return CompetitionReport.read(data) if data is not None else None
