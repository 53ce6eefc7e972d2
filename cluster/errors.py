"""User mistakes, told in one line (the command line shows the traceback only with
``--debug``).

Two kinds of error, as everywhere in aisci: a user's (or a model's) mistake is a
message that says what to do; a fault of the system is raised with its traceback.
``UserError`` is the first kind for the command line; ``one_line`` maps the errors of
the lower layers that are a user's to fix (a bus refusal, a missing sandbox, an
unreachable model, a bad setting) to the line shown.
"""

from __future__ import annotations

from pydantic import ValidationError

from actors.llm.config import ModelSpecError
from actors.llm.protocol import LLMError
from benchmarks.mlebench.task import InvalidTask
from bus import BusError

from .sandbox import SandboxUnavailable

__all__ = ["UserError", "one_line"]


class UserError(Exception):
    """Something the user gave is wrong; the message says what to give instead."""


def _validation(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:3]:
        where = ".".join(str(x) for x in err["loc"]) or e.title
        parts.append(f"{where}: {err['msg']}")
    more = f" (and {e.error_count() - 3} more)" if e.error_count() > 3 else ""
    return f"invalid {e.title} setting: " + "; ".join(parts) + more


def one_line(e: BaseException) -> str | None:
    """The line to show for ``e`` if it is a user's to fix, else None (a fault: raised)."""
    if isinstance(e, (UserError, BusError, SandboxUnavailable, ModelSpecError, InvalidTask)):
        return str(e)
    if isinstance(e, LLMError):
        return f"the model is not available: {e}"
    if isinstance(e, ValidationError):
        return _validation(e)
    if isinstance(e, PermissionError):
        return f"permission denied: {e.filename or e}; use a folder you can write (--root or AISCI_ROOT)"
    return None
