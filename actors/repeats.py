"""Noticing an agent that repeats itself.

An analyst once sent the same refused ``read_file`` 23 times in a row and spent all
24 of its steps: a refusal is a tool result, not a malformed reply, so nothing counted
it. Here every call (refused, failed or fine) is compared with the one before it, by
name and arguments (the JSON object, keys sorted, so spacing and key order do not make
two calls different):

- the 2nd identical call in a row runs, and its result says it was a repeat;
- the ``limit``-th (3rd) is not run: the subtask ends with that reason
  (``RepeatedCall``, raised from here, caught by the agent loop).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["RepeatGuard", "RepeatedCall"]


class RepeatedCall(Exception):
    """The same call, ``limit`` times in a row: the subtask cannot make progress."""


def signature(name: str, arguments: Any) -> str:
    """One string per distinct call: the name and the arguments' canonical JSON (or,
    for arguments that are not JSON, the text as written)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError:
            return f"{name} {arguments}"
    return f"{name} {json.dumps(arguments, sort_keys=True)}"


class RepeatGuard:
    """Counts identical calls in a row for one invocation of an agent."""

    def __init__(self, limit: int = 3):
        self.limit, self._last, self.count = limit, "", 0

    def check(self, name: str, arguments: Any) -> str:
        """Call before running a call. Returns '' for a new call, or a note to add to
        its result for a repeat.

        Raises:
            RepeatedCall: this is the ``limit``-th identical call in a row (not to be run).
        """
        sig = signature(name, arguments)
        self.count = self.count + 1 if sig == self._last else 1
        self._last = sig
        shown = sig if len(sig) <= 200 else sig[:200] + "..."
        if self.count >= self.limit:
            raise RepeatedCall(f"the same call {shown} {self.count} times in a row: ended without progress")
        if self.count > 1:
            return (f"NOTE: you made this same call ({name}, same arguments) {self.count} times in a row and its "
                    f"result does not change; do something else (call {self.limit} times in a row, the subtask "
                    "ends)")
        return ""
