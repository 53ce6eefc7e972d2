"""The Orchestrator: one per project, thin control over thick state.

Its loop, ``run()``: re-ground from the bus -> finish what is owed (the subtasks of
the last committed step, and the experiments they ask for, started as soon as an agent
asks (``actors.run_dispatch``), so that the agent can wait for the result: agents
through the shared pool, runs as Ray tasks, independent ones at the same time) -> check the stop
conditions (target metric, wall clock, steps, tokens) -> decide and commit the next
step. Everything it knows is re-read from the bus at every tick (``actors.state``), so
a restarted orchestrator continues where the bus says it stopped: a subtask with a
``complete`` event, or a run with a result, is never run again; what was in flight is
dispatched once more under the same id.

What it reads back from the bus it reads from the version store, by the hash its own
event recorded (a committed step, a run request), never from a file a role could have
rewritten since. Runs are executed only as the operator's ``RunPolicy`` allows
(``actors.runs.resolve``).

Crash points (``bus.crashpoints``, tests only): ``orchestrator_after_decision`` (a
step committed, its tree nodes not yet recorded), ``orchestrator_after_node`` (after
each node's ``tree_node`` event).
"""

from __future__ import annotations

import json
import re
import time
from typing import Callable, Literal

from pydantic import BaseModel, Field

from bus import Bus
from bus.crashpoints import crashpoint

from .agent import AgentResult, Subtask
from .llm.failures import cause_of
from .champion import settle_submission
from .policy import Decision, Policy, State
from .run_dispatch import RunDispatcher
from .runs import RunPolicy, RunResult, RunSpec
from .tree import NodeView, Tree, TreeNode, node_path, read_node, record_node

RunExperiments = Callable[[list[RunSpec]], list[RunResult]]
RunAgents = Callable[[list[Subtask]], list[AgentResult]]


class OrchestratorConfig(BaseModel):
    """Stop conditions and switches of one project's orchestrator (saved in plan/config.json)."""

    project: str
    task_kind: Literal["classification", "regression"] = "classification"
    data_kind: Literal["tabular", "text", "images"] | None = Field(
        default=None, description="What the task's inputs are (task/task.json's `data`), for the baseline's "
        "grid of models; None: not derived (read as tabular).")
    is_lower_better: bool = Field(default=False, description="The direction of the task's metric (from the task, "
                                  "never from a run): which cv_score is the best.")
    target: float | None = Field(default=None, description="Stop when the best CV score reaches this.")
    budget_s: float = Field(default=3600.0, gt=0, description="Wall-clock budget, from the project's first dispatch.")
    max_steps: int = Field(default=40, gt=0, description="Orchestrator decisions before it stops.")
    max_tokens: int = Field(default=5_000_000, gt=0, description="LLM tokens (all roles) before it stops.")
    policy: Literal["auto", "baseline", "llm"] = Field(
        default="auto", description="Who decides the steps: the baseline phases or the model (auto: the model "
        "unless the model is the baseline). A scripted agent model with baseline decisions is a cheap, exact "
        "replay of a project (tests, benchmarks).")
    bus_memory: bool = Field(default=True, description="Off (the paper's ablation): agents read only task/ and "
                             "what the orchestrator's prompt tells them, never other agents' files.")
    search: Literal["tree", "grid"] = Field(default="grid", description="The baseline's experiments: a search over "
                                            "the solution tree (drafts, improve the best, debug the buggy), or one "
                                            "flat grid of runs (the baseline before the tree, for comparison). "
                                            "`aisci run` makes tree jobs; the default keeps a job saved before the "
                                            "tree existed (no field) resuming as it started.")
    branches: int = Field(default=2, ge=1, le=64, description="Nodes of the solution tree grown at once (their "
                          "subtasks and runs in parallel, the runs placed by Ray).")
    max_nodes: int = Field(default=24, ge=1, description="The most nodes the baseline's search makes.")
    patience: int = Field(default=6, ge=1, description="The baseline's search ends when this many nodes made after "
                          "the best one did not beat it.")
    track: Literal["mlebench", "paper"] = Field(default="mlebench", description="paper: a PaperBench paper "
                                                "reproduction (`aisci paper`): task/ holds the paper; the baseline "
                                                "follows actors.paper_policy.")


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def failure_line(e: BaseException) -> str:
    """``Type: message`` of what failed, for people (status, the report): an agent's or a
    model actor's own exception rather than Ray's task error around it (whose name and
    text carry a coloured traceback), colour codes out, in one line of at most 400
    characters."""
    e = cause_of(e)
    text = " ".join(_ANSI.sub("", str(e)).split())
    return f"{type(e).__name__}: {text}"[:400]


class Orchestrator:
    def __init__(self, bus: Bus, config: OrchestratorConfig, policy: Policy, run_agents: RunAgents,
                 run_experiments: RunExperiments, preempted: Callable[[], str | None] = lambda: None,
                 run_policy: RunPolicy | None = None, hidden: tuple[str, ...] = ()):
        """``preempted()`` returns why this orchestrator must pause itself (its node is
        being drained: the pause is recorded with status ``moved``, the driver starts it
        elsewhere), or None. ``run_policy`` and ``hidden`` (host paths no run may see)
        are the operator's."""
        self.bus, self.config, self.policy = bus, config, policy
        self.run_agents, self.run_experiments, self.preempted = run_agents, run_experiments, preempted
        self.run_policy, self.hidden = run_policy or RunPolicy(), tuple(hidden)
        self.project = bus.project(config.project)
        self.view = self.project.as_role("orchestrator", f"orchestrator-{config.project}")
        self.system = self.project.as_role("system", f"orchestrator-{config.project}")
        self.tick_overhead_ms: list[float] = []  # per tick, time outside agents and experiments
        # Immutable facts, cached by what identifies them: a node's content by its hash, a
        # failed run's result by its id (a result is written once).
        self._nodes: dict[str, TreeNode | None] = {}
        self._failures: dict[str, str] = {}
        self.runs = RunDispatcher(self.project, self.view, self.system, self.run_policy, self.hidden,
                                  run_experiments, lambda: State.from_events(self.project.events(), self.config))

    def run(self) -> State:
        """Tick until a stop condition holds or a pause is asked for; returns the final state.

        Each tick does the first of: pause -> stop (a budget spent, on every path) ->
        finish the owed subtasks of the last committed decision -> run the owed
        experiments -> decide and commit the next step. Every one of these is idempotent
        given the bus, so killing this at any moment and calling ``run()`` again loses
        nothing and repeats only what was in flight. An unexpected exception is recorded
        as a ``failed`` event (``aisci status`` shows it; a resume tries again) and raised.
        """
        try:
            return self._run()
        except Exception as e:
            self.system.record("failed", f"orchestrator failed: {failure_line(e)}")
            raise

    def _run(self) -> State:
        self.view.write_if_changed("plan/config.json", self.config.model_dump_json(indent=1), "orchestrator settings")
        while True:
            t0 = time.perf_counter()
            state = self.reground()
            if (why := self.preempted()) and not state.pause_requested:
                self.view.record("pause_requested", why, status="moved")
                state = self.reground()
            if state.pause_requested:
                if not state.paused:
                    in_flight = ", ".join(sorted(state.in_flight)) or "nothing"
                    self.view.record("paused", f"{state.pause_requested}; in flight (re-dispatched on resume): "
                                               f"{in_flight}", metrics=state.metrics())
                state.stop_reason = f"paused: {state.pause_requested}"
                return state
            if state.stopped:  # a project that already ended stays ended (resume is a no-op)
                state.stop_reason = state.stopped
                return state
            self._render_plan(state)
            last = self._last_step(state)
            if last is not None and self._record_nodes(last, state):
                continue  # the step's nodes are on the bus now: re-ground with them
            if last is not None and last.stop:
                return self._stop(state, last.reason)
            state.check_stop()
            if state.stop_reason:
                return self._stop(state, state.stop_reason)
            owed = [s for s in (last.subtasks if last else []) if s.id not in state.completed]
            if owed:
                self._overhead(t0)
                self._dispatch_agents(owed, state)
                continue
            if state.pending_runs:
                self._overhead(t0)
                self._dispatch_runs(state)
                continue
            decision = self.policy.decide(state)
            if self._pause_asked_since(state):  # asked while the policy thought (a model: seconds): not committed,
                continue  # the next tick records the pause; the resume decides again from the same bus
            self._commit(state, decision)
            self._overhead(t0)

    # -- the parts of a tick ----------------------------------------------------------

    def reground(self) -> State:
        state = State.from_events(self.project.events(), self.config)
        state.tree = Tree.build(state, state.node_rows, self._read_node, self._read_failure)
        return state

    def _read_node(self, digest: str) -> TreeNode | None:
        if digest not in self._nodes:
            self._nodes[digest] = read_node(self.project, digest)
        return self._nodes[digest]

    def _read_failure(self, run) -> str:
        """A failed run's status, reason and the tail of its output (result.json)."""
        if run.id not in self._failures:
            try:
                result = RunResult.model_validate_json(self.system.read(f"experiments/{run.id}/result.json"))
                tail = result.output_tail[-2000:]
                self._failures[run.id] = f"{result.status}: {result.reason}\n{tail}".strip()
            except Exception:  # noqa: BLE001 - a missing or damaged result: its status says enough
                return f"{run.status}: (no readable result.json)"
        return self._failures[run.id]

    def _record_nodes(self, step: Decision, state: State) -> bool:
        """Record the committed step's nodes not yet on the bus (after a crash between the
        decision and its nodes, the next tick does it). A node whose parent (an
        ensemble's member) is unknown is the policy's fault, raised. Returns whether any was recorded."""
        tree: Tree = state.tree
        seqs = {i: n.seq for i, n in tree.nodes.items()}
        new = False
        for node in step.nodes:
            if node.id in tree.nodes:
                continue
            parents = list(dict.fromkeys([p for p in [node.parent, *node.members] if p is not None]))
            if unknown := [p for p in parents if p not in seqs]:
                raise ValueError(f"node {node.id}: its parent(s) {', '.join(unknown)} not in the tree")
            row = record_node(self.view, self.project, node, [seqs[p] for p in parents])
            seqs[node.id], new = row["seq"], True
            crashpoint("orchestrator_after_node")  # tests: a step's nodes half recorded
        return new

    def _step(self, digest: str) -> Decision:
        return Decision.model_validate_json(self.project.read_object(digest))

    def _last_step(self, state: State) -> Decision | None:
        return self._step(state.step_hashes[-1]) if state.step_hashes else None

    def _commit(self, state: State, decision: Decision) -> None:
        """The decision's content into the version store and its file, then its event,
        which carries the content's hash: the event is the commit point (a decision
        whose event never got written is simply made again), and the step is read back
        by that hash, so a rewritten plan/steps file changes nothing."""
        step = f"plan/steps/{state.steps + 1:04d}.json"
        data = decision.model_dump_json(indent=1)
        digest = self.project.put_object(data.encode())
        self.view.write_if_changed(step, data, decision.reason[:120])
        self.view.record("decision", decision.reason, path=step, hash=digest,
                         metrics={"subtasks": float(len(decision.subtasks))})
        crashpoint("orchestrator_after_decision")  # tests: a step committed, none of its nodes recorded

    def _render_plan(self, state: State) -> None:
        """plan/decisions.md and plan/roadmap.json are views of the committed steps,
        re-rendered from the tick's state (not appended) so that a crash between two
        writes cannot leave a line twice or not at all."""
        lines = []
        for n, digest in enumerate(state.step_hashes, 1):
            d = self._step(digest)
            lines.append(f"- step {n}: {d.reason} -> {[s.id for s in d.subtasks] or 'stop'}\n")
        self.view.write_if_changed("plan/decisions.md", "".join(lines), "the orchestrator's decisions, one per step")
        self.view.write_if_changed("plan/roadmap.json", json.dumps(self.policy.roadmap(state), indent=1), "roadmap")
        for node in (state.tree.nodes.values() if state.tree else []):
            self.view.write_if_changed(node_path(node.id), _render_node(node), f"{node.id}: {node.status}")

    def _pause_asked_since(self, state: State) -> bool:
        """A pause asked for after this tick re-grounded: nothing more goes out (the check
        is as close to the dispatch as it can be; the next tick records the pause)."""
        events = self.project.events(since=state.seq)
        return "pause_requested" in events.column("kind").to_pylist()

    def _dispatch_agents(self, subtasks: list[Subtask], state: State) -> None:
        t0 = time.perf_counter()
        if self._pause_asked_since(state):
            return
        for s in subtasks:
            again = state.dispatches[s.id]
            self.view.record("dispatch", f"{s.id} to {s.role}: {s.goal[:120]}" + (" (again: was in flight)" if again else ""),
                             subtask=s.id, attempt=again + 1)
        overhead = time.perf_counter() - t0
        left = state.time_left_s()  # the budget holds inside a subtask too: its agent stops at the deadline
        deadline = None if left is None else time.time() + max(left, 0.0)
        with self.runs.watching():  # the runs they ask for start now: an agent can wait for its results
            results = self.run_agents([s.model_copy(update={"deadline": deadline}) for s in subtasks])
        t1 = time.perf_counter()
        for s, result in zip(subtasks, results):
            self.view.record("complete", f"{s.id} {result.status}: {result.summary[:200]}", subtask=s.id,
                             status=result.status, metrics={"steps": float(result.steps)})
        self.tick_overhead_ms[-1] += (overhead + time.perf_counter() - t1) * 1000
        self.runs.wait()  # the step's runs end (or are withdrawn at a pause) before the next tick reads them

    def _dispatch_runs(self, state: State) -> None:
        """The runs owed that no batch of this process is running (asked for at the very
        end of a subtask, or in flight when a previous orchestrator stopped): started
        through ``RunDispatcher`` (``actors.run_dispatch``), then waited for."""
        t0 = time.perf_counter()
        self.runs.dispatch(state)
        self.tick_overhead_ms[-1] += (time.perf_counter() - t0) * 1000
        self.runs.wait()

    def _stop(self, state: State, reason: str) -> State:
        if self.config.track != "paper":  # a paper's submission is its repository, reproduced and graded after
            reason = f"{reason}; {settle_submission(self.system, state, self.config.bus_memory)}"
        self.view.record("stopped", reason, metrics=state.metrics())
        final = self.reground()
        final.stop_reason = reason
        return final

    def _overhead(self, t0: float) -> None:
        self.tick_overhead_ms.append((time.perf_counter() - t0) * 1000)


def _render_node(node: NodeView) -> str:
    """plan/tree/<id>.json: the node as decided, with what the bus says happened to it."""
    return json.dumps({**node.node.model_dump(), "status": node.status, "score": node.score, "runs": node.runs,
                       "code": node.code, "failure": node.failure[-600:]}, indent=1)
