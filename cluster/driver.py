"""The driver's side of one orchestrator start: watch it, show progress, and turn every
way it can end into an ``Outcome`` (never an exception the user sees as a traceback).

Preemption: SIGTERM (what a spot instance, ``ray job stop`` or Kubernetes sends),
Ctrl-C, or a drain of the driver's node asks the orchestrator to pause: it dispatches
nothing new, the work in flight has ``grace_s`` to finish (after a second Ctrl-C:
none), and the pause is recorded on the bus. A drain of only the orchestrator's node
ends as ``moved``: the caller starts a new orchestrator, which Ray places elsewhere.
"""

from __future__ import annotations

import signal
import threading
import time

import ray
from rich.console import Console

from actors.orchestrator_actor import draining_nodes
from actors.outcome import Outcome
from actors.state import State
from bus import Bus

from .display import untrusted
from .job import ProjectJob
from .progress import in_flight

__all__ = ["PreemptionNotice", "console", "pause_now", "progress_line", "result_of", "watch"]

# Job logs: one line per message, never re-wrapped; ':name:' in a reason stays as written.
# Text from the bus is printed only through cluster.display (markup escaped, cut).
console = Console(soft_wrap=True, emoji=False)


class PreemptionNotice:
    """SIGTERM or SIGINT (Ctrl-C), or a drain of the driver's node, while the job runs
    (``reason`` says which). Installed only in the main thread (signals go there)."""

    def __init__(self):
        self.reason: str | None = None
        self.now = False  # pause without waiting for the work in flight (Ctrl-C twice)
        self._previous: dict[int, object] = {}
        if threading.current_thread() is threading.main_thread():
            for sig, why in ((signal.SIGTERM, "SIGTERM (preemption notice)"), (signal.SIGINT, "Ctrl-C")):
                self._previous[sig] = signal.signal(sig, lambda signum, frame, why=why: self._on_signal(why))

    def _on_signal(self, why: str) -> None:
        if self.reason is None:
            self.reason = why
        elif why == "Ctrl-C":  # a second Ctrl-C: the user will not wait out the grace period
            self.now = True

    def check(self) -> str | None:
        if self.reason is None and ray.is_initialized():
            deadline = draining_nodes().get(ray.get_runtime_context().get_node_id())
            if deadline is not None:
                self.reason = "node drain: the driver's node is being drained"
        return self.reason

    def close(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


def progress_line(bus: Bus, job: ProjectJob, t0: float, events=None, state: State | None = None) -> str:
    """One line of progress, as rich markup (the ids in flight are the model's: escaped, cut).
    ``events`` and ``state``: the project's, when the caller has read them already."""
    events = bus.project(job.project).events() if events is None else events
    state = state or State.from_events(events, job.orchestrator)
    best = f"{state.best_run.cv_score:.4f}" if state.best_run else "-"
    now = in_flight(events, state)
    running = ", ".join(untrusted(i, 60) for i in now.running[:4]) or "-"
    queued = f" | queued: {', '.join(untrusted(i, 60) for i in now.queued[:4])}" if now.queued else ""
    return (f"\\[{time.time() - t0:6.1f} s] step {state.steps} | running: {running}{queued} | "
            f"runs {state.runs_said()} | best cv {best} | tokens {state.tokens}")


def watch(bus: Bus, job: ProjectJob, actor, ref, t0: float, notice: PreemptionNotice, grace_s: float,
          quiet: bool) -> Outcome:
    """Wait for the orchestrator, showing progress; on a preemption notice ask it to
    pause and give the work in flight ``grace_s``, then stop it. A pause asked on the bus
    (``aisci pause``) gets the same grace (not the orchestrator leaving its drained node:
    it ends by itself, and the caller starts it elsewhere)."""
    last, asked, reason = "", None, ""
    while True:
        ready, _ = ray.wait([ref], timeout=0.5)
        events = bus.project(job.project).events()
        state = State.from_events(events, job.orchestrator)
        line = progress_line(bus, job, t0, events, state)
        if not quiet and (line.split("]", 1)[1] != last or ready):  # print when something changed
            console.print(line)
            last = line.split("]", 1)[1]
        # A pause asked on the bus (`aisci pause`) that this driver has not taken up yet.
        on_bus = state.pause_requested if state.pause_requested and not state.pause_moves and asked is None else ""
        if ready:
            if on_bus and not quiet:
                # The orchestrator saw the pause on the bus and paused between two of these
                # ticks (nothing in flight): said all the same (the full suite met it once).
                _say_pausing(job, on_bus, grace_s)
            return result_of(bus, job, ref)
        why = notice.check()
        if why and asked is None:
            bus.project(job.project).as_role("system", "driver").record("pause_requested", why)
            again = "; Ctrl-C again pauses now" if why == "Ctrl-C" else ""
            console.print(f"[yellow]pausing[/yellow] {job.project}: {why}; work in flight has {grace_s:.0f} s"
                          f"{again} (what does not finish is done again on resume)")
            asked, reason = time.monotonic(), why
        elif on_bus:
            asked, reason = time.monotonic(), on_bus
            if not quiet:  # said as for SIGTERM and Ctrl-C (the breaker saw no line for `aisci pause`)
                _say_pausing(job, reason, grace_s)
        if asked is not None and (notice.now or time.monotonic() - asked > grace_s):
            return pause_now(bus, job, actor, reason, cut=notice.now)


def _say_pausing(job: ProjectJob, reason: str, grace_s: float) -> None:
    """The line for a pause asked on the bus (``aisci pause``); the reason is untrusted text."""
    console.print(f"[yellow]pausing[/yellow] {job.project}: {untrusted(reason, 200)}; work in flight has "
                  f"{grace_s:.0f} s (what does not finish is done again on resume)")


def result_of(bus: Bus, job: ProjectJob, ref) -> Outcome:
    """The outcome of the orchestrator's ``run`` (``ref``, ready), whatever happened to it."""
    try:
        return ray.get(ref)
    except ray.exceptions.ActorDiedError as e:
        if e.preempted:  # its node was preempted and Ray gave up on it: start it again elsewhere
            return Outcome(kind="moved", reason="the orchestrator's node was preempted")
        why = f"the orchestrator died: {str(e).splitlines()[0][:300]}"
    except ray.exceptions.RayTaskError as e:  # it raised (and recorded a `failed` event with the reason)
        cause = e.cause if isinstance(e.cause, Exception) else e
        why = f"the orchestrator failed: {type(cause).__name__}: {str(cause).splitlines()[0][:300]}"
    state = State.from_events(bus.project(job.project).events(), job.orchestrator)
    if not state.failed:
        bus.project(job.project).as_role("system", "driver").record("failed", why)
    return Outcome.of("failed", why, state)


def pause_now(bus: Bus, job: ProjectJob, actor, why: str, cut: bool = False) -> Outcome:
    """The grace period is over (``cut``: cut short, a second Ctrl-C): stop the
    orchestrator (and the work it waits for) and record the pause; what was in flight
    is re-dispatched on resume."""
    ray.kill(actor)
    state = State.from_events(bus.project(job.project).events(), job.orchestrator)
    bus.project(job.project).as_role("system", "driver").record(
        "paused", f"{why}; grace period {'cut short' if cut else 'over'}; in flight (re-dispatched on resume): "
                  f"{', '.join(sorted(state.in_flight)) or 'nothing'}", metrics=state.metrics())
    return Outcome.of("paused", f"paused: {why}", state)
