"""``aisci demo``: a short, real tour of the File-as-Bus.

Creates three small projects on the configured root, lets a few roles write, append
and get refused, records experiment metrics, then queries the index across projects
and prints what each step did. Everything it writes stays on the bus to look at
with ``aisci bus ls`` / ``aisci bus log demo-iris``.
"""

from __future__ import annotations

import time

from rich.console import Console

from bus import Bus, BusRefusal, query
from bus.reground import render_map

console = Console()

TASKS = {
    "demo-iris": ("Classify iris species from four measurements.", [0.90, 0.947, 0.967]),
    "demo-wine": ("Classify wine cultivars from 13 chemical features.", [0.889, 0.944, 0.972]),
    "demo-diabetes": ("Predict disease progression one year after baseline.", [0.41, 0.46, 0.48]),
}


def run(bus: Bus) -> None:
    t0 = time.perf_counter()
    console.print(f"[bold]File-as-Bus demo[/bold] on {bus.root}")
    for name, (description, scores) in TASKS.items():
        project = bus.create_project(name, description)
        project.as_role("system", "demo").write("task/description.md", f"# {name}\n\n{description}\n", summary="task statement")
        analyst = project.as_role("analyst", "analyst-1")
        note = analyst.write("analysis/data.md", f"Data notes for {name}: small, clean, tabular.\n", summary="data analysis")
        coder = project.as_role("coder", "coder-1")
        code = coder.write("code/train.py", "# baseline model\n", summary="baseline", derived_from=[note["seq"]])
        coder.append("logs/implementation.md", "- wrote a baseline model\n", summary="implementation log")
        try:
            coder.write("submission/submission.csv", "id,label\n")  # not the coder's to write
        except BusRefusal as e:
            console.print(f"  [yellow]refused[/yellow] (recorded as an event): {e}")
        experimenter = project.as_role("experimenter", "experimenter-1")
        for i, score in enumerate(scores):
            experimenter.write(f"experiments/run-{i}/metrics.json", f'{{"score": {score}}}\n',
                               summary=f"run {i}", metrics={"score": score}, derived_from=[code["seq"]])
        console.print(f"  {name}: {project.events().num_rows} events; the coder re-grounds on:")
        console.print("    " + render_map(coder.workspace_map()).replace("\n", "\n    "))
    best = query.best_metric(bus, "score", projects=list(TASKS))
    console.print("[bold]Best score per project[/bold] (one Arrow query across projects):")
    for row in best.to_pylist():
        console.print(f"  {row['project']}: {row['value']:.3f} (event {row['seq']}, {row['path']})")
    console.print(f"Done in {time.perf_counter() - t0:.2f} s. Look around with "
                  "`aisci bus ls`, `aisci bus log demo-iris`, `aisci bus query best --metric score`.")
