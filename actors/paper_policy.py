"""The baseline's policy for a paper project (``OrchestratorConfig.track == "paper"``):
read the paper, then write the submission; each phase retried once.

The reproduction and the grade come after the project ends, from the driver
(``cluster.paper_run``), as PaperBench runs them: outside the agents' reach.
"""

from __future__ import annotations

from .agent import Subtask
from .policy import Decision
from .state import State

__all__ = ["PAPER_PHASES", "PaperPolicy"]

PAPER_PHASES = (
    ("paperread", "analyst", "Read the paper (task/paper.md) and its addendum (task/addendum.md); write its "
                             "structure and experimental setup into analysis/paper/."),
    ("paperwrite", "writer", "Write the reproduction into submission/: reproduce.sh (runs everything, relative "
                             "paths only), the code, and a README.md saying what it does."),
)


class PaperPolicy:
    def decide(self, state: State) -> Decision:
        for phase, role, goal in PAPER_PHASES:
            attempts = sorted(s for s in state.completed if s.startswith(f"{phase}-"))
            if any(state.completed[s] for s in attempts):
                continue
            if len(attempts) >= 2:
                return Decision(stop=True, reason=f"phase {phase} failed twice: stopping")
            sid = f"{phase}-{len(attempts) + 1}"
            return Decision(subtasks=[Subtask(id=sid, role=role, goal=goal, context="BASELINE: {}")],
                            reason=f"{phase}: {goal[:80]}")
        return Decision(stop=True, reason="the submission is written: reproduction and grading follow")

    def roadmap(self, state: State) -> list[dict]:
        return [{"phase": p, "role": r, "done": any(ok for s, ok in state.completed.items() if s.startswith(f"{p}-"))}
                for p, r, _ in PAPER_PHASES]
