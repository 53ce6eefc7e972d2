r"""Ray's own log lines, kept off the user's terminal (``aisci --debug`` shows them).

Starting a local cluster and one project, Ray 2.60 wrote on the driver's stderr
(``aisci run``, 2026-12-04):

    2026-12-04 21:36:55,460	WARNING authentication_token_setup.py:85 -- Token authentication is enabled for
        this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out. For more information, see ...
    2026-12-04 21:36:58,853	INFO worker.py:2038 -- Started a local Ray instance.
    [2026-12-04 21:36:59,439 E 7296 7296] core_worker.cc:2465: Actor orchestrator-d1 with class name:
        'OrchestratorActor' ... has constructor arguments in the object store and max_restarts > 0. ...

None of it is for the user, and the first invites them to turn off a safeguard that
aisci keeps on (token authentication stays exactly as Ray sets it: nothing here
changes a setting). The last is written by the driver's core worker (C++) straight to
file descriptor 2, at a level that no Python logger governs; ``RAY_BACKEND_LOG_LEVEL``
would silence it only by silencing the log files of the raylet and every worker too.
So the lines are filtered where they meet: while a command that uses Ray runs, fd 2 is
a pipe that a thread copies to the real stderr, leaving out lines in Ray's two log
formats below ERROR (Python's DEBUG, INFO, WARNING; C++'s D, I, W, E: the core
worker's E lines stay in Ray's session logs, ``python-core-driver-*.log``). Everything
else (aisci's own lines, tracebacks, Ray's Python ERROR and C++ FATAL lines) passes as
it came.

One more kind reaches stdout from Python: the errors the raylet pushes to the driver,
which Ray's listener thread prints with a ``(raylet)`` prefix whatever
``log_to_driver`` says, e.g. after a pause stops the orchestrator mid-call::

    (raylet) Task OrchestratorActor.run failed. There are infinite retries remaining, ...

(the task is not retried: the actor was killed for good). ``sys.stdout`` is wrapped
so that such lines are left out (every other write passes at once), and the wrapper is
left in place after the block: the listener prints until Ray shuts down at the
process's exit (a pause's line came after ``main`` had returned).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from typing import Iterator

__all__ = ["hidden_ray_noise", "is_ray_noise"]

_RAY_LINE = re.compile(
    rb"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\t(?:DEBUG|INFO|WARNING) \S+:\d+ -- "  # Ray's Python loggers
    rb"|\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [DIWE] \d+ \d+\] \S+:\d+: )")  # its C++ (the driver's core worker)


_RAYLET_LINE = re.compile(r"^(?:\x1b\[[0-9;]*m)?\(raylet(?:, ip=[^)]*)?\)(?:\x1b\[[0-9;]*m)? ")


class _WithoutRayletLines:
    """``sys.stdout`` less the lines Ray's listener prints for the raylet (each comes as
    a write of the line, then one of its newline: ``print``)."""

    def __init__(self, stream):
        self._stream, self._dropped = stream, False

    def write(self, text: str) -> int:
        if _RAYLET_LINE.match(text):
            self._dropped = True
            return len(text)
        if self._dropped and text == "\n":
            self._dropped = False
            return 1
        self._dropped = False
        return self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def is_ray_noise(line: bytes) -> bool:
    """True for one of Ray's own log lines below ERROR (Python) or FATAL (C++)."""
    return _RAY_LINE.match(line) is not None


def _copy(read_fd: int, out_fd: int) -> None:
    """Copy whole lines from ``read_fd`` to ``out_fd``, leaving out Ray's, until EOF."""
    pending = b""
    with open(read_fd, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not is_ray_noise(line))
            if kept:
                os.write(out_fd, kept)
    if pending and not is_ray_noise(pending):
        os.write(out_fd, pending)


@contextlib.contextmanager
def hidden_ray_noise(hide: bool = True) -> Iterator[None]:
    """Within the block, Ray's own log lines on stderr (fd 2) are left out (``hide``;
    else nothing changes). Every other line reaches stderr whole, and all of them
    have by the time the block is left."""
    if not hide:
        yield
        return
    sys.stderr.flush()
    try:
        real = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep clean
        yield
        return
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    copier = threading.Thread(target=_copy, args=(read_fd, real), name="ray-noise-filter", daemon=True)
    copier.start()
    if not isinstance(sys.stdout, _WithoutRayletLines):
        sys.stdout = _WithoutRayletLines(sys.stdout)  # not undone: see the module's doc
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # the pipe's last writer of ours closes: the copier reads to its end and stops
        copier.join(timeout=5.0)  # a process that inherited the pipe keeps it open: then it goes on copying
        if not copier.is_alive():
            os.close(real)
