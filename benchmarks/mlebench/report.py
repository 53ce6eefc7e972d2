"""A grade in MLE-bench's words: the fields of its ``CompetitionReport``
(``mlebench/grade_helpers.py``), plus why a submission is invalid and how many teams
the medals were measured against.

Where MLE-bench's report differs: the thresholds are None when the competition has no
leaderboard (MLE-bench requires one; we grade without medals), ``any_medal`` is derived
(a property that is also written out), and ``reason`` says what to change in an invalid
submission. ``created_at`` and ``submission_path`` are left out: the bus records when
and what was graded.

Example::

    >>> r = CompetitionReport(competition_id="digits", score=0.97, valid_submission=True,
    ...                       submission_exists=True, is_lower_better=False, silver_medal=True)
    >>> r.any_medal, r.medal
    (True, 'silver')
"""

from __future__ import annotations

from pydantic import BaseModel, Field, computed_field

__all__ = ["CompetitionReport", "MEDALS"]

MEDALS = ("none", "bronze", "silver", "gold")  # worst to best: a medal's rank is its index


class CompetitionReport(BaseModel):
    """The grade of one submission."""

    competition_id: str
    score: float | None = Field(default=None, description="The metric, rounded to 5 decimals; None when the "
                                "submission is missing or invalid.")
    submission_exists: bool = False
    valid_submission: bool = False
    is_lower_better: bool = Field(description="The metric's direction (from the metric, never the leaderboard).")
    gold_medal: bool = False
    silver_medal: bool = False
    bronze_medal: bool = False
    above_median: bool = False
    gold_threshold: float | None = Field(default=None, description="None without a leaderboard (no medals).")
    silver_threshold: float | None = None
    bronze_threshold: float | None = None
    median_threshold: float | None = None
    reason: str = Field(default="", description="Why the submission was not scored: what to change.")
    metric: str = Field(default="", description="The metric's name (benchmarks.mlebench.METRICS).")
    leaderboard_size: int = Field(default=0, description="Teams on the leaderboard; 0: no medals.")

    @computed_field
    @property
    def any_medal(self) -> bool:
        return self.gold_medal or self.silver_medal or self.bronze_medal

    @property
    def medal(self) -> str:
        """The best medal earned, for people: gold, silver, bronze or none."""
        return "gold" if self.gold_medal else "silver" if self.silver_medal else \
            "bronze" if self.bronze_medal else "none"

    @property
    def standing(self) -> str:
        """Medal and median for people; a grade without a leaderboard says so instead of
        "medal none, above median False" (which reads as a poor result)."""
        if not self.leaderboard_size:
            return "no leaderboard, so no medal"
        return f"medal {self.medal}, above median {self.above_median}"

    @property
    def medal_rank(self) -> int:
        """0 (none) to 3 (gold): what leaderboards sort by."""
        return MEDALS.index(self.medal)

    @classmethod
    def read(cls, data: dict) -> CompetitionReport:
        """A report as written by ``model_dump``; a grade recorded before this format
        (``task``, ``valid``, ``medal``, ``lower_is_better``) is read into it."""
        if "competition_id" in data:
            return cls.model_validate({k: v for k, v in data.items() if k != "any_medal"})
        medal = data.get("medal", "none")
        return cls(competition_id=data.get("task", ""), score=data.get("score"),
                   submission_exists=data.get("reason") != "no submission file",
                   valid_submission=bool(data.get("valid")), is_lower_better=bool(data.get("lower_is_better")),
                   gold_medal=medal == "gold", silver_medal=medal == "silver", bronze_medal=medal == "bronze",
                   above_median=bool(data.get("above_median")),
                   **{k: data.get(k) for k in ("gold_threshold", "silver_threshold", "bronze_threshold",
                                               "median_threshold")},
                   reason=data.get("reason", ""), leaderboard_size=data.get("leaderboard_size", 0))
