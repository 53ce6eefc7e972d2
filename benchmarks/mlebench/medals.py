"""Medals exactly as MLE-bench computes them (its grade_helpers, after Kaggle's
progression rules), re-implemented here so that a grade means the same thing.

- The direction (lower is better) comes from the metric, given by the caller; a
  leaderboard is put in best-first order by it (MLE-bench reads it from the order of
  the leaderboard file, which a file sorted the other way gets wrong).
- The gold, silver and bronze thresholds are the scores at fixed *positions* of the
  leaderboard, which depend on the number of teams:

  | teams      | gold position      | silver position      | bronze position      |
  |------------|--------------------|----------------------|----------------------|
  | 1-99       | max(1, ⌊0.1 n⌋)    | max(1, ⌊0.2 n⌋)      | max(1, ⌊0.4 n⌋)      |
  | 100-249    | 10                 | max(1, ⌊0.2 n⌋)      | max(1, ⌊0.4 n⌋)      |
  | 250-999    | 10 + ⌊0.002 n⌋     | 50                   | 100                  |
  | 1000+      | 10 + ⌊0.002 n⌋     | max(1, ⌊0.05 n⌋)     | max(1, ⌊0.1 n⌋)      |

- A score at or beyond a threshold earns that medal (only the best one); "above
  median" is strictly better than the median score. An invalid submission (score
  None) earns nothing.
"""

from __future__ import annotations

import statistics
from typing import Sequence

from pydantic import BaseModel


class Rank(BaseModel):
    gold_medal: bool
    silver_medal: bool
    bronze_medal: bool
    above_median: bool
    gold_threshold: float
    silver_threshold: float
    bronze_threshold: float
    median_threshold: float
    lower_is_better: bool

    @property
    def any_medal(self) -> bool:
        return self.gold_medal or self.silver_medal or self.bronze_medal

    @property
    def medal(self) -> str:
        return "gold" if self.gold_medal else "silver" if self.silver_medal else "bronze" if self.bronze_medal else "none"


def medal_positions(n: int) -> tuple[int, int, int]:
    """1-based leaderboard positions of the gold, silver and bronze thresholds."""
    if n < 1:
        raise ValueError("a leaderboard needs at least one team")
    if n < 100:
        return max(1, int(n * 0.1)), max(1, int(n * 0.2)), max(1, int(n * 0.4))
    if n < 250:
        return 10, max(1, int(n * 0.2)), max(1, int(n * 0.4))
    if n < 1000:
        return 10 + int(n * 0.002), 50, 100
    return 10 + int(n * 0.002), max(1, int(n * 0.05)), max(1, int(n * 0.1))


def rank(score: float | None, leaderboard: Sequence[float], lower: bool) -> Rank:
    """Where ``score`` falls on ``leaderboard`` (its ``score`` column, in any order) for
    a metric where ``lower`` is better."""
    scores = sorted((float(s) for s in leaderboard), reverse=not lower)  # best first
    gold_t, silver_t, bronze_t = (scores[p - 1] for p in medal_positions(len(scores)))
    median_t = float(statistics.median(scores))
    thresholds = dict(gold_threshold=gold_t, silver_threshold=silver_t, bronze_threshold=bronze_t,
                      median_threshold=median_t, lower_is_better=lower)
    if score is None:
        return Rank(gold_medal=False, silver_medal=False, bronze_medal=False, above_median=False, **thresholds)

    def reaches(threshold: float) -> bool:
        return score <= threshold if lower else score >= threshold

    gold = reaches(gold_t)
    silver = not gold and reaches(silver_t)
    bronze = not gold and not silver and reaches(bronze_t)
    above = score < median_t if lower else score > median_t
    return Rank(gold_medal=gold, silver_medal=silver, bronze_medal=bronze, above_median=above, **thresholds)
