"""Agent-step overhead, excluding the model: the cost of re-grounding, keeping the
context, running tool calls and recording the step, against the scripted model.

    python -m benchmarks.perf.agent_bench [--steps 200] [--files 1000]

The project holds ``--files`` files (the workspace map the agent re-grounds on) and
each step reads a file and writes one. Last line:
``agent_bench steps=<n> step_p50_ms=<x> step_p95_ms=<y>``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile

from actors.agent import Agent, Subtask
from actors.llm.scripted import ScriptedLLM, reply
from actors.roles import ROLES
from bus import Bus, BusConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--files", type=int, default=1000)
    args = ap.parse_args()
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
        ms = sorted(result.step_overhead_ms)
        p50, p95 = statistics.median(ms), ms[int(0.95 * (len(ms) - 1))]
        print(f"{result.steps} steps on a {args.files}-file project ({result.status}): overhead per step outside "
              f"the model p50 {p50:.1f} ms, p95 {p95:.1f} ms (re-ground, context, 2 tool calls, step record)")
        print(f"agent_bench steps={result.steps} step_p50_ms={p50:.1f} step_p95_ms={p95:.1f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
