"""The driver's lease on the projects it runs: a heartbeat in the operator's area.

A project whose driver was SIGKILLed (the OOM killer, a lost machine, ``kill -9``)
leaves the bus exactly as a running one does: no ``paused``, ``stopped`` or ``failed``
event, and ``aisci status`` said "running" forever. So the driver of ``aisci run``,
``resume``, ``replay`` and ``sweep`` (also under ``ray job submit``: the same entry
points) holds a lease on each project it runs: ``<root>/operator/<project>/driver.json``
(``bus.operator``: no role and no run can read or forge it), rewritten atomically every
``PERIOD_S`` by a thread of the driver, so it beats while the main loop blocks (an
agent pool starting, a grade being computed). A clean exit writes it once more,
``released``.

The project's driver is gone (``driver_gone_since``) when its last heartbeat

- is released (the driver left; the project's own events say whether it ended, paused
  or failed: status shows those first),
- is older than ``STALE_PERIODS`` of its periods (dead or frozen, on any host; the
  times are the hosts' clocks, so clocks skewed by more than that mislead), or
- names this host and a process that no longer exists (seen at once after a SIGKILL
  on the same machine, without waiting for the heartbeat to age).

A project with no heartbeat file at all (an older aisci, an orchestrator run in a
test's own process) is not judged.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from pydantic import BaseModel, ValidationError

from bus import Bus

__all__ = ["DriverLease", "Heartbeat", "driver_gone_since", "last_heartbeat"]

HEARTBEAT_FILE = "driver.json"
PERIOD_S = 5.0  # one small atomic write (with fsync) per project every 5 s
STALE_PERIODS = 3  # missed beats before a driver on another host counts as gone


class Heartbeat(BaseModel):
    host: str
    pid: int
    time: float
    period_s: float = PERIOD_S
    released: bool = False

    def gone(self, now: float | None = None) -> bool:
        """True when the driver that wrote this is not running the project any more."""
        if self.released:
            return True
        if ((time.time() if now is None else now) - self.time) > STALE_PERIODS * self.period_s:
            return True
        return self.host == socket.gethostname() and not _alive(self.pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


class DriverLease:
    """The heartbeats of the projects one driver runs. ``hold`` writes the first beat at
    once; a daemon thread writes the next every ``period_s``; ``release`` (and
    ``close``, for all) writes the last.

    Example:

        >>> with DriverLease(bus) as lease:   # doctest: +SKIP
        ...     lease.hold("digits-1")
        ...     run_the_project()
    """

    def __init__(self, bus: Bus, period_s: float = PERIOD_S):
        self.bus, self.period_s = bus, period_s
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, project: str) -> None:
        with self._lock:
            self._held.add(project)
        self._write(project)
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="aisci-driver-lease", daemon=True)
            self._thread.start()

    def release(self, project: str) -> None:
        with self._lock:
            if project not in self._held:
                return
            self._held.discard(project)
        self._write(project, released=True)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for project in sorted(self._held):
            self.release(project)

    def __enter__(self) -> DriverLease:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _beat(self) -> None:
        while not self._stop.wait(self.period_s):
            with self._lock:
                held = sorted(self._held)
            for project in held:
                self._write(project)

    def _write(self, project: str, released: bool = False) -> None:
        beat = Heartbeat(host=socket.gethostname(), pid=os.getpid(), time=time.time(), period_s=self.period_s,
                         released=released)
        try:
            self.bus.operator.write(project, HEARTBEAT_FILE, beat.model_dump_json().encode())
        except OSError:
            pass  # a full disk or a lost mount: the next beat tries again; a status reader sees it age


def last_heartbeat(bus: Bus, project: str) -> Heartbeat | None:
    """The project's last heartbeat, or None (no driver of this version ever ran it)."""
    if not bus.operator.exists(project, HEARTBEAT_FILE):
        return None
    try:
        return Heartbeat.model_validate_json(bus.operator.read(project, HEARTBEAT_FILE))
    except (OSError, ValidationError):
        return None  # torn by hand or by an old version: not judged


def driver_gone_since(bus: Bus, project: str, now: float | None = None) -> float | None:
    """When the project's driver last beat, if it is gone (``Heartbeat.gone``); else None."""
    beat = last_heartbeat(bus, project)
    return beat.time if beat is not None and beat.gone(now) else None
