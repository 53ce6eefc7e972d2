"""The baseline's policy for a paper project (``OrchestratorConfig.track == "paper"``):
map the paper, read its method, experiments and baselines at the same time, plan, write
the submission, then check it by reproducing it as the grader will (the
``check_reproduction`` tool, ``actors.self_check``); each subtask retried once.

The reproduction that is graded, and the grade, come after the project ends, from the
driver (``cluster.paper_run``), as PaperBench runs them: outside the agents' reach.
"""

from __future__ import annotations

from .agent import Subtask
from .policy import Decision
from .state import State

__all__ = ["PAPER_PHASES", "PaperPolicy"]

# Phases in order; a phase's subtasks run at the same time (the readers fan out).
PAPER_PHASES: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = (
    ("structure", (("paperread", "analyst", "Read the paper (task/paper.md) and its addendum (task/addendum.md); "
                    "map its structure and experimental setup into analysis/paper/structure.md and setup.md."),)),
    ("read", tuple((f"paper{a}", "analyst", f"Read the paper for its {a}; write what matters for a reproduction "
                    f"into analysis/paper/{a}.md.") for a in ("method", "experiments", "baselines"))),
    ("plan", (("paperplan", "planner", "From analysis/paper/*.md and the addendum, write plan/paper_tasks.md: the "
               "reproduction's tasks, most important first, and what is out of scope."),)),
    ("write", (("paperwrite", "writer", "Write the reproduction into submission/: reproduce.sh (runs everything, "
                "relative paths only), the code, and a README.md saying what it does."),)),
    ("check", (("papercheck", "writer", "Reproduce the submission as the grader will (check_reproduction: a fresh "
                "copy of submission/, bash reproduce.sh under the time limit); where it fails or its results do not "
                "match the paper, fix submission/ and check again."),)),
)


class PaperPolicy:
    def decide(self, state: State) -> Decision:
        for phase, parts in PAPER_PHASES:
            owed = []
            for prefix, role, goal in parts:
                attempts = sorted(s for s in state.completed if s.startswith(f"{prefix}-"))
                if any(state.completed[s] for s in attempts):
                    continue
                if len(attempts) >= 2:
                    return Decision(stop=True, reason=f"phase {prefix} failed twice: stopping")
                owed.append(Subtask(id=f"{prefix}-{len(attempts) + 1}", role=role, goal=goal, context="BASELINE: {}"))
            if owed:
                return Decision(subtasks=owed, reason=f"{phase}: {', '.join(s.id for s in owed)}")
        return Decision(stop=True, reason="the submission is written and checked (the end reproduces it, and grades it where a judge is set)")

    def roadmap(self, state: State) -> list[dict]:
        return [{"phase": prefix, "role": role,
                 "done": any(ok for s, ok in state.completed.items() if s.startswith(f"{prefix}-"))}
                for _, parts in PAPER_PHASES for prefix, role, _ in parts]
