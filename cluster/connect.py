"""Which Ray cluster a command means: the one at ``--address`` or ``$RAY_ADDRESS`` (as
under ``ray job submit``), else a new local one of this machine; never one that ``ray
start`` left on the machine unless asked to (``ray.init()`` alone would join it). Token
authentication stays as the cluster has it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading

import ray

from actors.orchestrator_actor import NAMESPACE

from .errors import UserError

__all__ = ["connect"]


def connect(address: str | None = None) -> None:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``: set under ``ray job
    submit``), else start a new local one; never a cluster a ``ray start`` left on the
    machine unless asked to (``ray.init()`` alone would join it)."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        _reachable(address)
        try:
            ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:  # Ray: "Failed to connect to GCS", a bad form
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise UserError(f"cannot reach the Ray cluster at {address} ({first}): give the head's address "
                            "(HOST:6379, or ray://HOST:10001), start it with `ray start --head`, or leave out "
                            "--address (and RAY_ADDRESS) for a new local cluster") from None
    else:
        for attempt in (1, 2):  # Ray gives its raylet a fixed 30 s to register: a loaded machine can miss it
            with _interrupts_held() as held:
                try:
                    ray.init(address="local", namespace=NAMESPACE, include_dashboard=False, log_to_driver=False)
                    failed = None
                except Exception as e:  # noqa: BLE001  Ray raises a bare Exception ("timed out during startup")
                    failed = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                    ray.shutdown()  # what it had started of the cluster goes with it
            if held:  # Ctrl-C or SIGTERM while it started: the cluster just made is stopped whole, then obeyed
                ray.shutdown()
                raise KeyboardInterrupt(f"{held[0]} while the local Ray cluster started")
            if failed is None:
                return
            if attempt == 1:
                print(f"aisci: the local Ray cluster did not start ({failed}); trying once more", file=sys.stderr)
        raise UserError(f"the local Ray cluster did not start, twice ({failed}): the machine may be too busy; try "
                        "again when it is quieter, or start one with `ray start --head` and pass --address")


@contextlib.contextmanager
def _interrupts_held():
    """SIGINT and SIGTERM held off while a local cluster starts (a few seconds): one
    that broke into ``ray.init`` left the raylet, GCS and agents it had spawned running
    after aisci exited (the breaker found them after a Ctrl-C at start-up). Yields the
    list of what arrived. Only in the main thread (elsewhere signals cannot be set).

    ``ray.init`` sets its own SIGTERM handler first thing (``sys.exit(15)``, raised
    wherever the start is, and once swallowed there: the project then ran to its end);
    it is kept from doing so while the start is held, and set after it, as Ray would."""
    held: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    import ray._private.utils as ray_utils  # the one place Ray sets it (2.x); checked, not assumed

    def hold(signum, _frame):
        held.append(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGINT, hold)
    signal.signal(signal.SIGTERM, hold)
    setter = getattr(ray_utils, "set_sigterm_handler", None)
    if setter is not None:
        ray_utils.set_sigterm_handler = lambda handler: None
    try:
        yield held
    finally:
        if setter is not None:
            ray_utils.set_sigterm_handler = setter
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, _exit_on_sigterm)  # Ray's own: its atexit shutdown stops the cluster


def _exit_on_sigterm(signum, _frame):
    sys.exit(signum)


def _reachable(address: str) -> None:
    """A ``HOST:PORT`` that answers nothing is refused in seconds: Ray retries the GCS
    for minutes (ten and more were seen) before it gives up. Other forms (``auto``,
    ``ray://...``, ``http://...``) are left to Ray. Raises ``UserError``."""
    host, sep, port = address.rpartition(":")
    if not sep or "/" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except (OSError, ValueError) as e:  # refused, no route, unknown host, port out of range
        raise UserError(f"cannot reach the Ray cluster at {address} ({e.strerror or e}): give the head's "
                        "address (HOST:6379), start it with `ray start --head`, or leave out --address (and "
                        "RAY_ADDRESS) for a new local cluster") from None
