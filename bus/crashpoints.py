"""Named points where a process may be made to SIGKILL itself, for crash-safety tests.

``AISCI_CRASH_AT=after_rename`` (or ``after_rename:3`` for the third time the point is
reached) makes the process kill itself with SIGKILL exactly there. It is a real
SIGKILL of a real process, not a simulated failure: the tests then check what a
fresh process finds on disk. Unset (always, in production) a crash point costs one
comparison.
"""

from __future__ import annotations

import os
import signal

_spec = os.environ.get("AISCI_CRASH_AT", "")
_name, _, _nth = _spec.partition(":")
_remaining = int(_nth or 1)

# The points, in the order a write passes them (documented for tests and readers).
POINTS = (
    "after_tmp",  # content written and fsynced to a temp file, nothing else
    "after_link",  # content in the version store, workspace unchanged
    "after_rename",  # workspace file replaced, no index row yet
    "after_seq",  # sequence number allocated, row not yet in the journal
    "after_row",  # row in the journal (before the optional fsync)
    "mid_append",  # half of a log record appended
    "mid_compact",  # Parquet segment written, journals not yet moved aside
    "mid_compact_move",  # the counter's generation bumped, one compacted journal moved aside
)


def armed(name: str) -> bool:
    """True when this process is set to crash at ``name`` (tests only)."""
    return name == _name


def crashpoint(name: str) -> None:
    global _remaining
    if name != _name:
        return
    _remaining -= 1
    if _remaining <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
