"""PaperBench in our own code: rubrics, grading, the judge protocol and the shipped papers.

    >>> from benchmarks.paperbench import Paper, shipped_papers
    >>> paper = Paper(shipped_papers()["scaling-knn-vs-forest"])
    >>> len(paper.rubric.leaves()), paper.rubric.depth
    (23, 3)

``run_reproduction(submission, timeout_s)`` runs a submission's reproduce.sh as PaperBench
does; ``judge_submission(paper, submission, model)`` grades it with PaperBench's SimpleJudge
protocol and an injected model (``ScriptedJudgeModel`` in tests), aggregated as PaperBench
aggregates. The formats, rules and where each was read: docs/paperbench.md.
"""

from .grade import (
           GradedTaskNode,
           LeafGrade,
           PaperGrade,
           code_dev_rubric,
           grade_tree,
           score_from_children,
)
from .judge import JudgeModel, SimpleJudge, judge_submission
from .paper import InvalidPaper, Paper, shipped_papers
from .reproduce import Reproduction, prepare_reproduction, run_reproduction
from .rubric import TASK_CATEGORIES, InvalidRubric, TaskNode, load_rubric, parse_rubric
from .scripted import ScriptedJudgeModel
from .submission import Limits, Submission

__all__ = ["TASK_CATEGORIES", "GradedTaskNode", "InvalidPaper", "InvalidRubric", "JudgeModel", "LeafGrade", "Limits",
           "Paper", "PaperGrade", "Reproduction", "ScriptedJudgeModel", "SimpleJudge", "Submission", "TaskNode",
           "code_dev_rubric", "grade_tree", "judge_submission", "load_rubric", "parse_rubric",
           "prepare_reproduction", "run_reproduction", "score_from_children", "shipped_papers"]
