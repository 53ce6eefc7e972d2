"""How orchestration scales with concurrent projects, and how fast a big project resumes:

    python -m benchmarks.perf.scale_bench [--projects 1,10,100] [--resume-events 10000]

For each N: N projects at once on one embedded Ray (2 CPUs here), each with its own
Orchestrator actor, all sharing one pool of 4 agent actors and one scripted model
(``benchmarks.perf.scripted_project``: 4 subtasks, 3 tiny runs per project). Figures:
orchestration overhead per step (an orchestrator tick outside agents and experiments;
p50/p95 over all ticks of all projects), events/s through the bus (all rows the N
projects wrote / wall time), and memory (PSS of every process of the Ray session,
sampled each second; peak). Then the resume time: a project with ``--resume-events``
events is paused with a subtask owed, and ``aisci resume`` is run as a command (a new
process, which starts its own embedded Ray here) until its first new dispatch; and
the same in-process on the warm cluster. Last line:
``scale_bench projects=<max N> step_p50_ms=<x> events_per_s=<y> resume_s=<z>``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import ray

from actors.pool import AgentPool
from benchmarks.mlebench.task import shipped_tasks
from benchmarks.perf.scripted_project import scripted_config
from bus import Bus
from cluster.job import load_job
from cluster.run import make_job, prepare, run_job, start_orchestrator

ROOT = Path(__file__).resolve().parents[2]  # the checkout


def session_pss_mb() -> float:
    """PSS of this process and all its descendants (the embedded Ray session's GCS,
    raylet, workers and actors): shared pages counted once."""
    parents: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                parents[int(d)] = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        kids = [p for p, pp in parents.items() if pp in frontier and p not in tree]
        tree.update(kids)
        frontier = kids
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * (len(ordered) - 1) + 0.5), len(ordered) - 1)]


def scripted_job(task: str, project: str):
    job = make_job(task, project, scripted_config(), budget_s=86400)
    job.orchestrator.policy = "baseline"  # the scripted project's steps are the baseline phases
    return job


def run_n(bus: Bus, pool: AgentPool, n: int) -> dict:
    task = str(shipped_tasks()["breast-cancer"])
    jobs = [scripted_job(task, f"scale{n}-{i:03d}") for i in range(n)]
    t0 = time.perf_counter()
    peak, refs, actors = 0.0, [], []
    for job in jobs:
        prepare(bus, job)
        actors.append(start_orchestrator(bus, job, pool))
        refs.append(actors[-1].run.remote())
    pending, last_sample = list(refs), 0.0
    while pending:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
        if time.perf_counter() - last_sample > 1.0:
            peak, last_sample = max(peak, session_pss_mb()), time.perf_counter()
    wall = time.perf_counter() - t0
    outcomes = ray.get(refs)
    for actor in actors:
        ray.kill(actor)
    bad = [o.reason for o in outcomes if "submission: submission/submission.csv is in place" not in o.reason]
    if bad:
        raise RuntimeError(f"{len(bad)} of {n} projects did not finish: {bad[:3]}")
    ticks = [t for o in outcomes for t in o.tick_overhead_ms]
    events = sum(bus.project(j.project).events().num_rows for j in jobs)
    return {"n": n, "wall_s": wall, "step_p50_ms": statistics.median(ticks), "step_p95_ms": pct(ticks, 0.95),
            "events": events, "events_per_s": events / wall, "peak_mb": peak}


def big_paused_project(bus: Bus, name: str, n_events: int) -> None:
    """A project that ran its first step, then grew to ``n_events`` events (the agents'
    steps and log records of a long project), then paused with its next subtask owed."""
    from actors.agent import Subtask
    from actors.policy import Decision

    job = scripted_job(str(shipped_tasks()["breast-cancer"]), name)
    prepare(bus, job)
    proj = bus.project(name)
    agent = proj.as_role("coder", "coder-history")
    while proj.events().num_rows < n_events - 4:
        for i in range(200):
            agent.record("agent_step", f"step {i}: 1 calls", metrics={"format_errors": 0.0})
            agent.append("logs/implementation.md", f"- step {i}: tried something\n")
    orch = proj.as_role("orchestrator", f"orchestrator-{name}")
    decision = Decision(subtasks=[Subtask(id="analyse-1", role="analyst", goal="look at the data")], reason="owed")
    orch.write("plan/steps/0001.json", decision.model_dump_json(indent=1), summary="owed step")
    orch.record("decision", "owed", path="plan/steps/0001.json", metrics={"subtasks": 1.0})
    proj.as_role("system", "bench").record("pause_requested", "benchmark: preempted")
    proj.as_role("system", "bench").record("paused", "benchmark: preempted")


def first_dispatch_after(bus: Bus, name: str, seq: int, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r["kind"] == "dispatch" for r in bus.project(name).events(since=seq).to_pylist()):
            return time.perf_counter()
        time.sleep(0.02)
    raise RuntimeError(f"{name}: no dispatch within {timeout} s of the resume")


def resume_times(bus: Bus, n_events: int) -> tuple[int, float, float]:
    big_paused_project(bus, "big-cli", n_events)
    big_paused_project(bus, "big-warm", n_events)
    events = bus.project("big-cli").events().num_rows
    # As a user types it: a new process (imports, its own embedded Ray here; on a cluster
    # it would join the running one).
    seq = bus.project("big-cli").events().column("seq")[-1].as_py()
    env = {**os.environ, "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "cluster.cli", "--root", str(bus.root), "resume", "big-cli"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cli_s = first_dispatch_after(bus, "big-cli", seq) - t0
    proc.terminate()
    proc.wait(timeout=120)
    # In-process on the warm cluster: what a sweep or a re-submitted job pays.
    seq = bus.project("big-warm").events().column("seq")[-1].as_py()
    t0 = time.perf_counter()
    threading.Thread(target=lambda: run_job(bus, load_job(bus, "big-warm"), quiet=True), daemon=True).start()
    warm_s = first_dispatch_after(bus, "big-warm", seq) - t0
    return events, cli_s, warm_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--projects", default="1,10,100")
    ap.add_argument("--resume-events", type=int, default=10_000)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="scale_bench-")
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="aisci", log_to_driver=False)
        bus = Bus(root)
        base = session_pss_mb()
        pool = AgentPool(4, bus.config, scripted_config())
        print(f"Ray session before any project: {base:.0f} MB (PSS)")
        print("   N   wall s  step p50 ms  step p95 ms   events  events/s  peak MB  MB/project")
        rows = []
        for n in (int(x) for x in args.projects.split(",")):
            r = run_n(bus, pool, n)
            rows.append(r)
            print(f"{n:4d} {r['wall_s']:8.1f} {r['step_p50_ms']:12.1f} {r['step_p95_ms']:12.1f} {r['events']:8d} "
                  f"{r['events_per_s']:9.0f} {r['peak_mb']:8.0f} {(r['peak_mb'] - base) / n:11.1f}", flush=True)
        events, cli_s, warm_s = resume_times(bus, args.resume_events)
        print(f"resume of a paused project with {events} events, to its first new dispatch: "
              f"`aisci resume` as a new process {cli_s:.2f} s (incl. starting Python and an embedded Ray); "
              f"in-process on the warm cluster {warm_s:.2f} s")
        last = rows[-1]
        print(f"scale_bench projects={last['n']} step_p50_ms={last['step_p50_ms']:.1f} "
              f"events_per_s={last['events_per_s']:.0f} resume_s={cli_s:.2f}")
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
