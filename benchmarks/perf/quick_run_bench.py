"""Figures for the ``run`` tool (docs/agents.md):

    python -m benchmarks.perf.quick_run_bench [--calls 40] [--code-files 20] [--ray]

The overhead of one ``run`` call of ``true``, end to end through the tool
(``ToolBox.call``: argument checks, the operator's policy, the scratch copy of code/,
the sandbox, the output, the write-back), p50 and p95 over ``--calls``, with a code/ of
``--code-files`` files of 4 KB; sandboxed (bwrap, when it starts here) and not.
``--ray`` also times the same call run as a Ray task (``num_cpus=0.25``) instead of in
the agent's process: what placing it with Ray would add to every call.

Last line: ``quick_run_bench p50_ms_bwrap=<x> p95_ms_bwrap=<y> p50_ms_none=<z> p95_ms_none=<w> [p50_ms_ray=...]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from actors.runs import RunPolicy
from actors.tools import ToolBox
from bus import Bus
from cluster import sandbox
from cluster.quick_run import SandboxExecutor


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(int(0.95 * len(ordered)), len(ordered) - 1)]


def _time_calls(tools: ToolBox, calls: int) -> list[float]:
    tools.call("run", {"command": "true"})  # the first call probes bwrap (once per process)
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        answer = tools.call("run", {"command": "true"})
        out.append((time.perf_counter() - t0) * 1000)
        assert answer.startswith("exit code 0"), answer
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--code-files", type=int, default=20)
    ap.add_argument("--ray", action="store_true")
    args = ap.parse_args()
    bus = Bus(tempfile.mkdtemp(prefix="aisci-quick-bench-") + "/root")
    proj = bus.create_project("bench")
    coder = proj.as_role("coder", "coder-bench")
    for n in range(args.code_files):
        coder.write(f"code/module_{n}.py", "# filler\n" * 455, summary="filler")
    figures = {}
    kinds = (["bwrap"] if sandbox.probe().ok else []) + ["none"]
    for kind in kinds:
        tools = ToolBox(coder, ("run",), "bench", executor=SandboxExecutor(bus.config, RunPolicy(sandbox=kind)))
        p50, p95 = _percentiles(_time_calls(tools, args.calls))
        figures[f"p50_ms_{kind}"], figures[f"p95_ms_{kind}"] = p50, p95
        print(f"run `true`, sandbox {kind}: p50 {p50:.1f} ms, p95 {p95:.1f} ms ({args.calls} calls, "
              f"{args.code_files} code files)")
    if args.ray:
        import ray

        from actors.quick_run import QuickRequest

        ray.init(address="local", num_cpus=2, include_dashboard=False)
        executor = SandboxExecutor(bus.config, RunPolicy(sandbox=kinds[0]))
        remote = ray.remote(num_cpus=0.25)(lambda request: executor(request))
        request = QuickRequest(project="bench", instance="coder-bench", command="true", timeout_s=60,
                               folders=("task", "code"))
        ray.get(remote.remote(request))
        samples = []
        for _ in range(args.calls):
            t0 = time.perf_counter()
            assert ray.get(remote.remote(request)).status == "ok"
            samples.append((time.perf_counter() - t0) * 1000)
        p50, p95 = _percentiles(samples)
        figures["p50_ms_ray"], figures["p95_ms_ray"] = p50, p95
        print(f"the executor as a Ray task (sandbox {kinds[0]}, no write-back): p50 {p50:.1f} ms, p95 {p95:.1f} ms")
        ray.shutdown()
    print("quick_run_bench " + " ".join(f"{k}={v:.1f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
