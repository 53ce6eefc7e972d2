r"""Showing untrusted text on the operator's terminal.

Everything on the bus that a model, an agent, a run or a task file wrote is untrusted
(docs/threat-model.md): event and file summaries, stop, pause and failure reasons,
subtask and run ids, grade reasons, a model server's error messages. Printed through
``rich`` as it is, such text was markup (``"all good [/red] done"`` ended ``aisci run``
with a ``MarkupError`` before the grade; ``[link=...]`` made a hyperlink), terminal
control (``\x1b[2J`` cleared the screen) and a cost (rich wraps a long unbroken word
in quadratic time: 10,000 characters took 1 s, 60,000 took 44 s, so a 1.2 MB reason
hung the driver after its project had ended).

So every piece of it goes through one of these before it reaches the console:

- ``clean(text, limit)``: plain text, one line, control characters and escape
  sequences shown as ``\x1b`` (never sent to the terminal), cut to ``limit``
  characters with "…". For ``Text`` cells and ``markup=False`` prints.
- ``untrusted(text, limit)``: ``clean``, then escaped for rich markup: for a piece of
  untrusted text inside a message of ours that uses markup.
- ``clean_document(text)``: a whole document (a report): lines kept, nothing cut,
  control characters shown.

Example:

    >>> untrusted("all good [/red] done\x1b[2J")
    'all good \\[/red] done\\x1b[2J'
    >>> clean("x" * 1000, 10)
    'xxxxxxxxx…'
"""

from __future__ import annotations

import re

from rich.markup import escape

__all__ = ["LIMIT", "clean", "clean_document", "untrusted"]

LIMIT = 300  # characters of one piece of untrusted text in a line or a table cell

# C0 and C1 control characters, DEL, and the Unicode controls that reorder or hide text
# on screen (bidirectional overrides and isolates: the "Trojan Source" trick).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SPACE = re.compile("[\t\n\r\x0b\x0c]+")


def _shown(match: re.Match) -> str:
    return repr(match.group())[1:-1]  # '\x1b', '\u202e': visible, inert


def clean(text: object, limit: int = LIMIT) -> str:
    """``text`` as one line of plain, inert text of at most ``limit`` characters."""
    text = "" if text is None else str(text)
    cut = len(text) > limit
    head = _CONTROL.sub(_shown, _SPACE.sub(" ", text[:limit]))  # the cut first: linear in ``limit``
    if cut or len(head) > limit:
        return head[:limit - 1] + "…"
    return head


def untrusted(text: object, limit: int = LIMIT) -> str:
    """``clean(text, limit)`` escaped for rich markup (``[`` is shown, never a tag)."""
    return escape(clean(text, limit))


def clean_document(text: str) -> str:
    """A whole document with its lines and tabs kept, every other control character shown."""
    return re.sub("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]", _shown, text)
