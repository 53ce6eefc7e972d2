"""The ``wait_for_runs`` tool: where the runs an agent asked for stand, read from the
bus (``run_requested``, ``dispatch``, ``run_withdrawn``, ``experiment_start``,
``experiment`` events and the run's ``result.json``), waiting a bounded time for those
not yet ended.

A run asked for in a subtask is started by the orchestrator while the subtask goes
(``actors.run_dispatch``: within a fraction of a second, then as the cluster's run
queue admits it), so an agent can launch a run, wait for it here and read its status,
metrics and the tail of its output in the same subtask. The wait covers runs queued
(asked for, not yet dispatched), waiting (dispatched, waiting for a CPU or GPU) and
running; it ends early when all have ended, when the project is asked to pause (runs
still waiting are then withdrawn, and dispatched again on resume: answered at once as
such), and at the subtask's deadline (the project's budget).
"""

from __future__ import annotations

import json
import time

import pyarrow as pa
import pyarrow.compute as pc

from bus import BusError, RoleView

__all__ = ["run_states", "wait_for_runs", "DEFAULT_WAIT_S", "MAX_WAIT_S"]

DEFAULT_WAIT_S, MAX_WAIT_S = 120.0, 900.0
_POLL_S = 1.0
_TAIL_CHARS, _OK_TAIL_CHARS = 1200, 300
_KINDS = pa.array(["run_requested", "dispatch", "run_withdrawn", "experiment_start", "experiment",
                   "pause_requested", "resumed"])
_UNDER_WAY = ("queued", "waiting", "running")


def run_states(view: RoleView, names: list[str] | None) -> dict[str, dict]:
    """name -> {state: unknown|queued|waiting|withdrawn|running|ended, status, subtask,
    metrics, summary} for ``names`` (None: the runs this role asked for, the latest 20)."""
    return _states(view, names)[0]


def _states(view: RoleView, names: list[str] | None) -> tuple[dict[str, dict], bool]:
    """The runs' states, and whether the project is asked to pause (and not resumed)."""
    events = view.project.events()
    rows = events.filter(pc.is_in(events.column("kind"), _KINDS)).to_pylist()
    if names is None:
        names = list(dict.fromkeys(r["run"] for r in rows if r["kind"] == "run_requested" and r["role"] == view.role))
        names = names[-20:]
    states = {n: {"state": "unknown"} for n in names}
    pausing = False
    for r in rows:
        if r["kind"] in ("pause_requested", "resumed"):
            pausing = r["kind"] == "pause_requested"
            continue
        s = states.get(r["run"])
        if s is None:
            continue
        if r["kind"] == "run_requested" and s["state"] == "unknown":
            s.update(state="queued", subtask=r["subtask"])
        elif r["kind"] == "dispatch" and s["state"] in ("queued", "waiting", "withdrawn"):
            s["state"] = "waiting"
        elif r["kind"] == "run_withdrawn" and s["state"] in ("queued", "waiting"):
            s["state"] = "withdrawn"
        elif r["kind"] == "experiment_start" and s["state"] != "ended":
            s["state"] = "running"
        elif r["kind"] == "experiment":
            s.update(state="ended", status=r["status"], metrics=dict(r["metrics"] or []), summary=r["summary"] or "")
    return states, pausing


def _result(view: RoleView, name: str) -> dict:
    try:
        return json.loads(view.read(f"experiments/{name}/result.json"))
    except (BusError, ValueError):
        return {}


def _line(view: RoleView, name: str, s: dict) -> str:
    state = s["state"]
    if state == "unknown":
        return f"{name}: no such run (launch_experiment asks for one)"
    if state == "queued":
        return f"{name}: queued: asked for, not dispatched yet"
    if state == "withdrawn":
        return f"{name}: withdrawn at a pause before it started: dispatched again when the project resumes"
    if state == "waiting":
        return f"{name}: dispatched, waiting for a CPU or GPU"
    if state == "running":
        return f"{name}: running"
    result = _result(view, name)
    metrics = {k: v for k, v in s.get("metrics", {}).items() if k not in ("duration_s", "gpus")}
    shown = ", ".join(f"{k}={v:.6g}" for k, v in sorted(metrics.items())) or "no metrics"
    line = f"{name}: {s['status']} in {result.get('duration_s', s.get('metrics', {}).get('duration_s', 0)):.1f} s, {shown}"
    if result.get("reason"):
        line += f"; {result['reason']}"
    tail = str(result.get("output_tail") or "")[-(_TAIL_CHARS if s["status"] != "ok" else _OK_TAIL_CHARS):]
    if tail.strip():  # a run that failed: enough to see why; one that worked: its last lines (a final score)
        line += f"\n  the end of its output (experiments/{name}/output.log):\n" + \
            "\n".join("  | " + t for t in tail.splitlines())
    return line


def wait_for_runs(view: RoleView, names: list[str] | None, timeout_s: float, deadline: float | None) -> str:
    """Each run's line, after waiting up to ``timeout_s`` (and no later than ``deadline``,
    epoch seconds) for the runs queued, waiting or running to end; a pause asked for
    ends the wait (nothing more starts)."""
    until = time.time() + timeout_s
    if deadline is not None:
        until = min(until, deadline)
    t0 = time.monotonic()
    while True:
        states, pausing = _states(view, names)
        going = [n for n, s in states.items() if s["state"] in _UNDER_WAY]
        if not going or pausing or time.time() >= until:
            break
        time.sleep(min(_POLL_S, max(until - time.time(), 0.0)))
    if not states:
        return "you asked for no runs yet (launch_experiment)"
    waited = time.monotonic() - t0
    lines = [_line(view, n, s) for n, s in states.items()]
    if going:
        why = "the project is asked to pause" if pausing else f"waited {waited:.0f} s"
        lines.append(f"({why}; {len(going)} still under way: wait again, or go on and read "
                     "experiments/<name>/result.json later)")
    return "\n".join(lines)
