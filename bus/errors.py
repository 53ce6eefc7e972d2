"""The bus's error family.

Two kinds of error, as everywhere in this project:

* ``BusRefusal`` and its subclasses are *the caller's mistake* (usually a model's):
  a path outside the role's scope, a malformed path, a file that is too large.
  The bus records a ``refused`` event, and the agent loop shows the message to the
  model, which carries on. Messages therefore say what was refused and what to do.
* ``BusFault`` is *the system's fault* (a corrupt index, a missing root): it is raised
  to the operator with a message that says how to fix it.
"""

from __future__ import annotations


class BusError(Exception):
    """Base class of every error the bus raises."""


class BusRefusal(BusError):
    """A request the bus refused; nothing was written."""

    rule = "refused"


class InvalidProjectName(BusRefusal):
    rule = "project-name"


class InvalidPath(BusRefusal):
    rule = "path"


class LinkRefused(InvalidPath):
    """A path with a symbolic link in it: the bus never follows links (``bus.nofollow``)."""

    rule = "symlink"


class ScopeViolation(BusRefusal):
    rule = "scope"


class FileTooLarge(BusRefusal):
    rule = "size"


class NotFound(BusRefusal):
    rule = "not-found"


class BusFault(BusError):
    """Something is wrong with the bus itself, not with the request."""


class CounterDamaged(BusFault):
    """A project's sequence counter (``SEQ``) does not hold a number: ``aisci bus repair``
    sets it past the highest sequence number in the index."""


class SegmentDamaged(BusFault):
    """A Parquet segment does not parse or does not match its checksum: ``aisci bus
    repair`` rebuilds it from the journals it was made from."""
