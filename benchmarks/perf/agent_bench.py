"""Agent-step overhead, excluding the model: the cost of re-grounding, keeping the
context, running tool calls and recording the step, against the scripted model.

    python -m benchmarks.perf.agent_bench [--steps 200] [--files 1000] [--tool-steps 40] [--tools run,...]

The project holds ``--files`` files (the workspace map the agent re-grounds on) and
each step reads a file and writes one. Then, per tool (issue 14: ``run``,
``edit_file``, ``search_files``, ``check_submission``, ``wait_for_runs`` on an ended
run, ``write_file``, ``read_file``), a debugger subtask of ``--tool-steps`` steps that
each make one call of that tool (arguments varied, so that no call repeats), on the
same project and a real task (breast-cancer: its sample submission for
check_submission); the step's overhead includes the tool's own work (``run``: the
sandbox, bwrap where it starts here). Lines:
``agent_bench steps=<n> step_p50_ms=<x> step_p95_ms=<y>`` and
``agent_bench_tools <tool>_p50_ms=<x> <tool>_p95_ms=<y> ...``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile

from actors.agent import Agent, Subtask
from actors.llm.scripted import ScriptedLLM, reply
from actors.roles import ROLES
from actors.runs import RunPolicy, RunResult, record_result
from benchmarks.mlebench.task import Task, shipped_tasks
from bus import Bus, BusConfig
from cluster import sandbox
from cluster.quick_run import SandboxExecutor
from cluster.tasks import import_task

TOOLS = ("run", "edit_file", "search_files", "check_submission", "wait_for_runs", "write_file", "read_file")
_ENDED = 3  # ended runs (and their submissions) the calls cycle over


def _percentiles(ms: list[float]) -> tuple[float, float]:
    ms = sorted(ms)
    return statistics.median(ms), ms[int(0.95 * (len(ms) - 1))]


def _call(tool: str, i: int, files: int) -> tuple[str, dict]:
    """Step ``i``'s call of ``tool``: never the same arguments twice in a row."""
    return {
        "run": ("run", {"command": f"echo {i}"}),
        "edit_file": ("edit_file", {"path": "code/counter.py", "old": f"counter = {i}\n",
                                    "new": f"counter = {i + 1}\n"}),
        "search_files": ("search_files", {"pattern": f"note {i % files}", "folder": "analysis"}),
        "check_submission": ("check_submission", {"path": f"experiments/e{i % _ENDED}/submission.csv"}),
        "wait_for_runs": ("wait_for_runs", {"runs": [f"e{i % _ENDED}"], "timeout_s": 60}),
        "write_file": ("write_file", {"path": f"code/out/w{i}.md", "content": f"result {i}\n", "summary": f"step {i}"}),
        "read_file": ("read_file", {"path": f"analysis/notes/n{i % files}.md"}),
    }[tool]


def _prepare_tools(bus: Bus, project: str) -> None:
    """The task's files, ended runs with a valid submission each, and code/counter.py."""
    import_task(bus, Task(shipped_tasks()["breast-cancer"]), project)
    proj = bus.project(project)
    system = proj.as_role("system", "setup")
    sample = next(p for p in system.list("task") if "sample_submission" in p)
    for k in range(_ENDED):
        proj.as_role("debugger", "debugger-setup").record("run_requested", f"e{k}: python train.py", run=f"e{k}")
        system.write(f"experiments/e{k}/submission.csv", system.read(sample), summary="predictions")
        record_result(system, RunResult(id=f"e{k}", status="ok", duration_s=1.0, metrics={"cv_score": 0.9},
                                        output_tail="cv 0.9\n"))
    proj.as_role("debugger", "debugger-setup").write("code/counter.py", "counter = 0\n", summary="the counter")


def _tool_steps(bus: Bus, project: str, tool: str, steps: int, files: int) -> list[float]:
    policy = RunPolicy(sandbox="bwrap" if sandbox.probe().ok else "none", memory_mb=1024)
    script = [reply(calls=[_call(tool, i, files)]) for i in range(steps)]
    script.append(reply(calls=[("finish", {"summary": "ok"})]))
    roles = {**ROLES, "debugger": ROLES["debugger"].model_copy(update={"max_tokens": 10**12})}
    agent = Agent(bus, ScriptedLLM(script), roles=roles, executor=SandboxExecutor(bus.config, policy=policy))
    result = agent.run(project, Subtask(id=f"t-{tool}", role="debugger", goal="bench", max_steps=steps + 1))
    if result.status != "finished":
        raise SystemExit(f"the {tool} subtask ended {result.status}: {result.summary}")
    return result.step_overhead_ms[:steps]  # the finish step is not the tool's


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--tool-steps", type=int, default=40, help="steps per tool (0: skip the per-tool figures)")
    ap.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated, of {','.join(TOOLS)}")
    args = ap.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    if unknown := sorted(set(tools) - set(TOOLS)):
        ap.error(f"unknown tools {unknown}; choose from {','.join(TOOLS)}")
    root = tempfile.mkdtemp(prefix="agent_bench-")
    try:
        bus = Bus(config=BusConfig(root=root))
        proj = bus.create_project("bench")
        system = proj.as_role("system", "setup")
        for i in range(args.files):
            system.write(f"analysis/notes/n{i}.md", f"note {i}\n" * 20, summary=f"note {i}")
        script = []
        for i in range(args.steps):
            script.append(reply(calls=[("read_file", {"path": f"analysis/notes/n{i % args.files}.md"}),
                                       ("write_file", {"path": f"analysis/out/o{i}.md", "content": f"result {i}\n",
                                                       "summary": f"step {i}"})]))
        script.append(reply(calls=[("finish", {"summary": "done"})]))
        roles = {**ROLES, "analyst": ROLES["analyst"].model_copy(update={"max_tokens": 10**12})}
        result = Agent(bus, ScriptedLLM(script), roles=roles).run("bench", Subtask(id="b", role="analyst", goal="bench",
                                                                      max_steps=args.steps + 1))
        p50, p95 = _percentiles(result.step_overhead_ms)
        print(f"{result.steps} steps on a {args.files}-file project ({result.status}): overhead per step outside "
              f"the model p50 {p50:.1f} ms, p95 {p95:.1f} ms (re-ground, context, 2 tool calls, step record)")
        print(f"agent_bench steps={result.steps} step_p50_ms={p50:.1f} step_p95_ms={p95:.1f}")
        if args.tool_steps > 0 and tools:
            _prepare_tools(bus, "bench")
            figures = []
            for tool in tools:
                t50, t95 = _percentiles(_tool_steps(bus, "bench", tool, args.tool_steps, args.files))
                print(f"{tool}: {args.tool_steps} steps, overhead per step outside the model p50 {t50:.1f} ms, "
                      f"p95 {t95:.1f} ms (the tool's own work included)")
                figures.append(f"{tool}_p50_ms={t50:.1f} {tool}_p95_ms={t95:.1f}")
            print(f"run sandbox: {'bwrap' if sandbox.probe().ok else 'none'}; load average "
                  f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            print("agent_bench_tools " + " ".join(figures))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
