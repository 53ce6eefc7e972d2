"""A paper project's settings, the operator's: ``<root>/operator/<project>/paper.json``,
written by ``aisci paper`` before anything runs and read by every later step (the
reproduction's time limit, the judge, Code-Dev), never from a file an agent can write."""

from __future__ import annotations

from pydantic import BaseModel, Field

from bus import Bus

from .paper_grade import JudgeConfig

__all__ = ["NOT_GRADED", "SETTINGS_FILE", "PaperSettings", "settings_of"]

SETTINGS_FILE = "paper.json"  # in the operator's area: no role reads or changes it
NOT_GRADED = ("no judge model configured: not graded (give --judge openai:<model> with --judge-base-url URL, "
              "or --judge scripted for the deterministic test judge)")


class PaperSettings(BaseModel):
    """The paper side of a project's job (``<root>/operator/<project>/paper.json``)."""

    paper: str = Field(description="The paper folder (PaperBench's layout).")
    show_rubric: bool = Field(default=False, description="rubric.json and judge.addendum.md also go onto the bus "
                              "(PaperBench's agents never see them: off by default).")
    code_dev: bool = Field(default=False, description="PaperBench Code-Dev: no reproduction, only Code "
                           "Development leaves graded.")
    judge: JudgeConfig | None = Field(default=None, description="Who grades; None: not graded.")
    reproduce_timeout_s: float = Field(default=3600.0, gt=0, description="reproduce.sh's time limit.")
    reproduce_gpus: float = Field(default=0.0, ge=0, le=64, description="GPUs the end (reproduction and grade) "
                                  "asks Ray for: it then runs as a Ray task on a node that has them, and "
                                  "reproduce.sh sees them (CUDA_VISIBLE_DEVICES, /dev/nvidia*). PaperBench "
                                  "reproduces on one A10.")


    @property
    def gpus_said(self) -> str:
        """``reproduce_gpus`` in words: 1 GPU, 2 GPUs, 0.5 GPU."""
        return f"{self.reproduce_gpus:g} GPU" + ("s" if self.reproduce_gpus > 1 else "")


def settings_of(bus: Bus, project: str) -> PaperSettings | None:
    """The project's paper settings; None for a project that is not a paper's."""
    if not bus.operator.exists(project, SETTINGS_FILE):
        return None
    return PaperSettings.model_validate_json(bus.operator.read(project, SETTINGS_FILE))
