"""MLE-bench's competitions in our own code: the metrics of the 22 Lite graders, each
with its direction, and the checks that make a submission gradable.

    >>> from benchmarks.mlebench import competition, read_csv
    >>> comp = competition("spooky-author-identification")
    >>> comp.metric.name, comp.is_lower_better
    ('multi-class-log-loss', True)

``comp.grade(read_csv(submission), read_csv(answers))`` is the score MLE-bench reports
(rounded to 5 decimals), or ``InvalidSubmission`` with what to change. The rules, and
where each was read, are in docs/mlebench-metrics.md.
"""

from .competitions import (
           COMPETITIONS,
           LITE_IDS,
           Competition,
           UnknownCompetition,
           competition,
)
from .metrics import ALIASES, METRICS, Metric, Score, UnknownMetric, metric_by_name
from .submission import InvalidSubmission, check_submission, read_csv

__all__ = ["ALIASES", "COMPETITIONS", "LITE_IDS", "METRICS", "Competition", "InvalidSubmission", "Metric",
           "Score", "UnknownCompetition", "UnknownMetric", "check_submission", "competition", "metric_by_name",
           "read_csv"]
