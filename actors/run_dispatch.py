"""Starting the runs agents ask for while their subtasks are still going.

``launch_experiment`` only records a ``run_requested`` event; the orchestrator owns
every run. While its subtasks are in flight, ``RunDispatcher.watching`` polls the bus
(every ``WATCH_POLL_S``) for new requests and starts them at once, in a thread of the
orchestrator's process, through the same path as before (each request read back by
its hash, resolved against the operator's ``RunPolicy`` and the budget left, a
``dispatch`` event, then ``run_experiments``: the cluster's run queue). So an agent's
``wait_for_runs`` can wait for its run and read its result in the same subtask.

Why the orchestrator and not the agent (docs/orchestrator.md, "Runs start inside a
subtask"): the run stays owned by the one process that already owns runs, with its
guarantees unchanged: its pause watch withdraws waiting runs, the queue takes back
what a dead orchestrator held, and a restarted orchestrator dispatches a run with no
result once more under the same id. An agent that dies does not take its run with it
(Ray's tasks share their owner's fate: a run started by the agent actor would die with
it and need a second owner to re-dispatch it).

A run is started at most once per orchestrator process: ``started`` holds the ids
whose batch is still going, and ``dispatch`` skips them; once a batch ends each of its
runs has a result on the bus or was withdrawn at a pause (dispatched again on resume).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable

from pydantic import ValidationError

from bus import Project, RoleView

from .runs import RunPolicy, RunRequest, RunResult, RunSpec, record_result, resolve
from .state import State

__all__ = ["RunDispatcher", "WATCH_POLL_S"]

WATCH_POLL_S = 0.25  # how often the bus is read for new run requests while subtasks go


class RunDispatcher:
    """The orchestrator's runs: started from the main loop or while subtasks go, never twice."""

    def __init__(self, project: Project, view: RoleView, system: RoleView, run_policy: RunPolicy,
                 hidden: tuple[str, ...], run_experiments: Callable[[list[RunSpec]], list[RunResult]],
                 state_now: Callable[[], State]):
        """``view``/``system``: the orchestrator's and the system's views of ``project``;
        ``state_now()``: the project's state re-read from the bus (the budget left, the
        runs owed, a pause)."""
        self.project, self.view, self.system = project, view, system
        self.run_policy, self.hidden = run_policy, hidden
        self.run_experiments, self.state_now = run_experiments, state_now
        self.started: set[str] = set()  # run ids whose batch is still going in this process
        self._batches: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()  # one dispatch at a time (the watcher's and the main loop's)

    def dispatch(self, state: State) -> int:
        """Start the runs ``state`` owes that this process has not started: each request
        read back by its hash, checked again, resolved against the operator's policy and
        the budget left. A refusal is the run's result (the agents read why); the rest go
        to ``run_experiments`` in a thread, and each records its own result (an
        ``experiment`` event). Nothing goes out once a pause is asked for. Returns how
        many runs were started."""
        with self._lock:
            since = self.project.events(since=state.seq).to_pylist()  # what ``state`` has not seen yet
            if state.pause_requested or any(e["kind"] == "pause_requested" for e in since):
                return 0
            # A run whose batch ended after ``state`` was read has its result there: not again.
            ended = {e["run"] for e in since if e["kind"] == "experiment"}
            specs: list[RunSpec] = []
            for run in state.pending_runs:
                if run.id in self.started or run.id in ended:
                    continue
                try:
                    request = RunRequest.model_validate_json(self.project.read_object(run.request_hash or ""))
                except (ValidationError, ValueError) as e:  # cannot come from the tool: a damaged or forged request
                    record_result(self.system, RunResult(id=run.id, status="refused",
                                                         reason=f"unreadable request: {e}"))
                    continue
                self.system.write_if_changed(f"experiments/{run.id}/spec.json", request.model_dump_json(indent=1),
                                             f"asked for by {run.subtask or 'an agent'}: {request.command}"[:200])
                spec = resolve(request, self.run_policy, state.time_left_s(), self.hidden)
                if isinstance(spec, RunResult):
                    record_result(self.system, spec)
                    continue
                again = state.dispatches[run.id]
                self.view.record("dispatch", f"{run.id}: {request.command[:120]}" + (" (again)" if again else ""),
                                 run=run.id, attempt=again + 1,
                                 metrics={"gpus": spec.gpus, "timeout_s": spec.timeout_s})
                specs.append(spec)
            if specs:
                self.started |= {s.id for s in specs}
                batch = threading.Thread(target=self._run_batch, args=(specs,), name="runs", daemon=True)
                self._batches.append(batch)
                batch.start()
            return len(specs)

    def wait(self) -> None:
        """Wait for every batch started here to end (each run has a result, or was
        withdrawn at a pause). Raises what a batch raised (Ray failing, not a run)."""
        while self._batches:
            self._batches.pop(0).join()
        if self._errors:
            raise self._errors.pop(0)

    @contextlib.contextmanager
    def watching(self):
        """While the body runs (the subtasks), start the runs their agents ask for."""
        stop = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(stop,), name="run-watch", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()

    def _watch(self, stop: threading.Event) -> None:
        try:
            # Runs owed already (in flight when a previous orchestrator stopped): now, so
            # that the re-dispatched subtask that asked for them can wait for them.
            state = self.state_now()
            seq = state.seq
            if state.pending_runs:
                self.dispatch(state)
            while not stop.wait(WATCH_POLL_S):
                events = self.project.events(since=seq)
                if "run_requested" in events.column("kind").to_pylist():
                    state = self.state_now()
                    seq = state.seq
                    self.dispatch(state)
                elif events.num_rows:
                    seq = int(events.column("seq")[-1].as_py())
        except BaseException as e:  # noqa: BLE001 - raised in the main loop by wait()
            self._errors.append(e)

    def _run_batch(self, specs: list[RunSpec]) -> None:
        try:
            self.run_experiments(specs)
        except BaseException as e:  # noqa: BLE001 - raised in the main loop by wait()
            self._errors.append(e)
        finally:
            with self._lock:
                self.started -= {s.id for s in specs}
