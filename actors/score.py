"""One score type that knows its direction (as AIDE's ``MetricValue(maximize=...)``).

Every comparison of scores in the framework (the best run, the target, the runs shown
to a model, a sweep's best seed) goes through ``Score``: better is ``>``, whatever the
metric. The direction comes from the task's metric (``is_lower_better``, MLE-bench's
word), never from a field a run or a model writes, and never from the order of rows
in a leaderboard file. A non-finite value is not a score (``Score.of`` refuses it).
"""

from __future__ import annotations

import functools
import math

__all__ = ["Score", "NotAScore"]


class NotAScore(ValueError):
    """A value that cannot be ranked (NaN, infinite, not a number)."""


@functools.total_ordering
class Score:
    """A finite metric value and its direction; ``a > b`` means a is the better score.

        >>> Score(0.2, is_lower_better=True) > Score(0.3, is_lower_better=True)
        True
        >>> max([Score(0.9, False), Score(0.95, False)]).value
        0.95
    """

    __slots__ = ("value", "is_lower_better")

    def __init__(self, value: float, is_lower_better: bool):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise NotAScore(f"{value!r} is not a finite number")
        self.value, self.is_lower_better = float(value), bool(is_lower_better)

    @classmethod
    def of(cls, value: object, is_lower_better: bool) -> "Score | None":
        """``Score`` of ``value``, or None where it is missing or not a finite number."""
        try:
            return cls(value, is_lower_better)  # type: ignore[arg-type]
        except NotAScore:
            return None

    def _check(self, other: "Score") -> None:
        if not isinstance(other, Score):
            raise TypeError(f"cannot compare a Score with {type(other).__name__}")
        if other.is_lower_better != self.is_lower_better:
            raise ValueError("cannot compare scores of metrics with opposite directions")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Score) and (self.value, self.is_lower_better) == (other.value, other.is_lower_better)

    def __lt__(self, other: "Score") -> bool:  # self is worse than other
        self._check(other)
        return self.value > other.value if self.is_lower_better else self.value < other.value

    def __hash__(self) -> int:
        return hash((self.value, self.is_lower_better))

    def reaches(self, target: float) -> bool:
        """At least as good as ``target`` (a value of the same metric)."""
        return self.value <= target if self.is_lower_better else self.value >= target

    def __repr__(self) -> str:
        return f"Score({self.value!r}, {'lower' if self.is_lower_better else 'higher'} is better)"
