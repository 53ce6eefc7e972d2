"""``aisci run TASK``: the main job. Starts or joins Ray, puts the task's public files
on the bus, starts the project's Orchestrator actor, shows progress read from the bus,
and ends with the grade and the report.

Ray: ``RAY_ADDRESS`` set (as under ``ray job submit``) joins that cluster; unset starts
an embedded local one. Token authentication stays as the cluster has it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time

import ray
from rich.console import Console

from actors.llm.config import LLMConfig
from actors.orchestrator import OrchestratorConfig
from actors.orchestrator_actor import NAMESPACE, OrchestratorActor, orchestrator_name
from actors.policy import State
from actors.pool import AgentPool
from benchmarks.grading.task import Task
from bus import Bus

from .report import write_report
from .tasks import import_task

console = Console()


def connect() -> None:
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(namespace=NAMESPACE, log_to_driver=False)
    else:
        ray.init(namespace=NAMESPACE, include_dashboard=False, log_to_driver=False)


def parse_budget(text: str) -> float:
    """'90s', '30m', '2h', '1d' or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, IndexError):
        raise ValueError(f"budget {text!r}: use a number of seconds or e.g. 90s, 30m, 2h, 1d") from None


def progress_line(bus: Bus, project: str, t0: float) -> str:
    state = State.from_events(bus.project(project).events())
    best = f"{state.best_run['cv_score']:.4f}" if state.best_run else "-"
    scored = sum(1 for r in state.runs if r["cv_score"] is not None)
    running = ", ".join(sorted(state.in_flight)[:4]) or "-"
    return (f"[{time.time() - t0:6.1f} s] step {state.steps} | running: {running} | runs {scored} | "
            f"best cv {best} | tokens {state.tokens}")


def run_task(bus: Bus, task_dir: str, project: str | None = None, llm: LLMConfig | None = None,
             budget_s: float = 3600.0, target: float | None = None, bus_memory: bool = True,
             agents: int = 2) -> dict:
    task = Task(task_dir)
    project = project or f"{task.id}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    t0 = time.time()
    connect()
    proj = import_task(bus, task, project)
    if shutil.which("bwrap") is None:
        console.print("[yellow]warning[/yellow]: bubblewrap is not installed, so experiments run unsandboxed "
                      "(`apt-get install bubblewrap`)")
    console.print(f"[bold]aisci run[/bold] {task.id} -> project [bold]{project}[/bold] on {bus.root} "
                  f"(model: {(llm or LLMConfig()).backend}{'' if bus_memory else ', bus memory OFF'})")
    pool = AgentPool(agents, bus.config, llm or LLMConfig(), bus_memory=bus_memory)
    config = OrchestratorConfig(project=project, task_kind=task.spec.kind, target=target, budget_s=budget_s,
                                bus_memory=bus_memory)
    actor = OrchestratorActor.options(name=orchestrator_name(project), namespace=NAMESPACE, get_if_exists=True).remote(
        bus.config.model_dump(mode="json"), config.model_dump(), pool,
        {"hide": [str(task.private_dir)], "memory_mb": 4096, "cpus": 1}, (llm or LLMConfig()).model_dump())
    ref = actor.run.remote()
    last = ""
    while True:
        ready, _ = ray.wait([ref], timeout=2.0)
        line = progress_line(bus, project, t0)
        if line.split("]", 1)[1] != last or ready:  # print when something changed
            console.print(line)
            last = line.split("]", 1)[1]
        if ready:
            break
    outcome = ray.get(ref)
    ray.kill(actor)
    grade = task.grade(proj.dir / "submission" / "submission.csv").model_dump()
    proj.as_role("writer", "grader").write("report/grade.json", json.dumps(grade, indent=1),
                                           summary=f"{grade['medal']} medal, score {grade['score']}")
    write_report(proj, grade)
    console.print(f"[bold]{outcome['stop_reason']}[/bold] after {outcome['steps']} steps, {time.time() - t0:.1f} s")
    console.print(f"grade: score {grade['score']} ({'valid' if grade['valid'] else grade['reason']}), "
                  f"medal [bold]{grade['medal']}[/bold], above median {grade['above_median']}; "
                  f"report: {proj.dir / 'report' / 'report.md'}")
    return {"project": project, "grade": grade, "wall_s": time.time() - t0, **outcome}
