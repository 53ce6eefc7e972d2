"""What a project's work in flight is doing now: running, or queued for a CPU or GPU.

``State.in_flight`` is what the orchestrator sent out and has not seen end. A run in
it may not have started: the run queue (``cluster.admission``) holds it until a CPU or GPU is free,
and on a 2-core machine the baseline's four runs were all shown "running" while two
waited. A run has started when its own process says so: the ``experiment_start``
event that ``cluster.experiments`` records as the run begins (after its latest
``dispatch``: a run dispatched again after a pause waits again). Subtasks go to the
agent pool straight away: in flight is running for them. A run withdrawn from the
queue at a pause (``run_withdrawn`` after its latest dispatch, ``cluster.scheduler``)
is neither: it waits for the resume, which dispatches it again.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from actors.state import State

__all__ = ["InFlight", "in_flight"]

_KINDS = pa.array(["dispatch", "experiment_start", "run_withdrawn"])


@dataclass(frozen=True)
class InFlight:
    running: list[str]  # subtasks and runs under way, sorted
    queued: list[str]  # runs dispatched that wait for a CPU or GPU, sorted


def in_flight(events: pa.Table, state: State) -> InFlight:
    """The work in flight of the project whose ``events`` gave ``state``, split."""
    latest: dict[str, str] = {}  # run -> the kind of its latest dispatch, start or withdrawal
    rows = events.filter(pc.is_in(events.column("kind"), value_set=_KINDS)).select(["kind", "run"]).to_pylist()
    for r in rows:
        if r["run"]:
            latest[r["run"]] = r["kind"]
    runs = {i for i in state.in_flight if i in state.run_records}
    waiting = {i for i in runs if latest.get(i) != "experiment_start"}
    withdrawn = {i for i in runs if latest.get(i) == "run_withdrawn"}
    return InFlight(running=sorted(state.in_flight - waiting), queued=sorted(waiting - withdrawn))
