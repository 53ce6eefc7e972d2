"""The ``wait_for_runs`` tool: where the runs an agent asked for stand, read from the
bus (``run_requested``, ``dispatch``, ``experiment_start``, ``experiment`` events and
the run's ``result.json``), waiting a bounded time for those under way.

A run asked for in a subtask is started by the orchestrator once the subtask has
ended (``actors.orchestrator``): waiting for it inside that subtask would only spend
the budget, so a queued run is answered at once, never waited for. The wait is cut to
the subtask's deadline (the project's budget).
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
_TAIL_CHARS = 1200
_KINDS = pa.array(["run_requested", "dispatch", "experiment_start", "experiment"])


def run_states(view: RoleView, names: list[str] | None) -> dict[str, dict]:
    """name -> {state: unknown|queued|waiting|running|ended, status, subtask, metrics,
    summary} for ``names`` (None: the runs this role asked for, the latest 20)."""
    events = view.project.events()
    rows = events.filter(pc.is_in(events.column("kind"), _KINDS)).to_pylist()
    if names is None:
        names = list(dict.fromkeys(r["run"] for r in rows if r["kind"] == "run_requested" and r["role"] == view.role))
        names = names[-20:]
    states = {n: {"state": "unknown"} for n in names}
    for r in rows:
        s = states.get(r["run"])
        if s is None:
            continue
        if r["kind"] == "run_requested" and s["state"] == "unknown":
            s.update(state="queued", subtask=r["subtask"])
        elif r["kind"] == "dispatch" and s["state"] in ("queued", "waiting"):
            s["state"] = "waiting"
        elif r["kind"] == "experiment_start" and s["state"] != "ended":
            s["state"] = "running"
        elif r["kind"] == "experiment":
            s.update(state="ended", status=r["status"], metrics=dict(r["metrics"] or []), summary=r["summary"] or "")
    return states


def _result(view: RoleView, name: str) -> dict:
    try:
        return json.loads(view.read(f"experiments/{name}/result.json"))
    except (BusError, ValueError):
        return {}


def _line(view: RoleView, name: str, s: dict, subtask_id: str) -> str:
    state = s["state"]
    if state == "unknown":
        return f"{name}: no such run (launch_experiment asks for one)"
    if state == "queued":
        mine = s.get("subtask") == subtask_id and subtask_id
        return f"{name}: queued: it starts after {'your' if mine else 'its'} subtask ends" + \
            (" (call finish to start it; a later subtask reads its result)" if mine else "")
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
    if s["status"] != "ok" and result.get("output_tail"):
        line += f"\n  the end of its output (experiments/{name}/output.log):\n" + \
            "\n".join("  | " + t for t in result["output_tail"][-_TAIL_CHARS:].splitlines())
    return line


def wait_for_runs(view: RoleView, names: list[str] | None, timeout_s: float, deadline: float | None,
                  subtask_id: str = "") -> str:
    """Each run's line, after waiting up to ``timeout_s`` (and no later than ``deadline``,
    epoch seconds) for the runs dispatched or running to end."""
    until = time.time() + timeout_s
    if deadline is not None:
        until = min(until, deadline)
    t0 = time.monotonic()
    while True:
        states = run_states(view, names)
        going = [n for n, s in states.items() if s["state"] in ("waiting", "running")]
        if not going or time.time() >= until:
            break
        time.sleep(min(_POLL_S, max(until - time.time(), 0.0)))
    if not states:
        return "you asked for no runs yet (launch_experiment)"
    waited = time.monotonic() - t0
    lines = [_line(view, n, s, subtask_id) for n, s in states.items()]
    if going:
        lines.append(f"(waited {waited:.0f} s; {len(going)} still under way: wait again, or go on and read "
                     "experiments/<name>/result.json later)")
    return "\n".join(lines)
