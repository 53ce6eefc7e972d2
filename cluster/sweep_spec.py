"""A sweep file (``aisci sweep sweep.yaml``): a grid of tasks and papers x settings x seeds
x models, each grid point a project.

    name: tabular
    tasks: [breast-cancer, diabetes]        # shipped task names or task folders
    # data_dir: ~/mlebench/data             # MLE-bench's data dir: the tasks are then competition ids there
    # tasks: [spaceship-titanic, {id: my-comp, metric: auc-roc, id_column: key}, {id: digits, data_dir: null}]
    # papers: [scaling-knn-vs-forest]       # shipped paper names or PaperBench paper folders (`aisci paper`)
    # paper: {judge: scripted, reproduce_timeout: 1h, reproduce_gpus: 0, code_dev: false, show_rubric: false}
    settings:                               # named overrides: bus_memory, cross_project_memory (default
                                            # off in a sweep), budget, target (tasks only), max_steps, max_tokens
      memory-on: {}
      memory-off: {bus_memory: false}
    seeds: [0, 1]                           # exported to every run as AISCI_SEED
    models: [baseline]                      # baseline | openai:<model> | vllm:<path>
    budget: 30m                             # per project, unless a setting says otherwise
    max_concurrent: 4                       # projects running at once
    agents: 4                               # agent actors per model (shared by all its projects)
    policy: {network: false, memory_mb: 4096}   # the operator's run policy (actors.runs.RunPolicy)
    allow_unsandboxed: false                # run models' code without bubblewrap where it cannot run
    llm: {gpus: 0, max_model_len: 8192}     # vllm models' engine: the --llm-* keys, any vLLM engine arg

A task is a string (a shipped task's name or a folder; with ``data_dir``, a competition
id in it, as ``aisci run ID --data-dir DIR``) or a ``TaskEntry`` mapping, which can give
its own ``data_dir`` (``null``: a shipped task or folder in a sweep with a data dir)
and what ``aisci run`` takes as flags (``metric``, ``id_column``, ``config``,
``leaderboard``). A paper is a shipped paper's name or a PaperBench paper folder; the
``paper:`` mapping (``PaperOptions``) is what ``aisci paper`` takes as flags, the same for
every paper of the sweep. Every task and paper is found and checked whole before Ray starts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_serializer,
    model_validator,
)

from actors.llm.config import ModelSpecError, parse_model, with_engine
from actors.runs import RunPolicy
from benchmarks.mlebench.task import InvalidTask, TaskOptions, open_task
from benchmarks.paperbench import Paper

from .cli_types import MAX_GPUS
from .errors import UserError
from .job import ProjectJob
from .paper_grade import parse_judge
from .paper_run import make_paper_job, open_paper
from .paper_settings import PaperSettings
from .run import make_job, parse_budget, read_yaml
from .tasks import find_task

__all__ = ["PaperOptions", "Setting", "SweepSpec", "TaskEntry"]


class Setting(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bus_memory: bool = True
    # Off in a sweep unless a setting turns it on: members (seeds above all) must not
    # learn from one another, or the grid measures the order they ran in.
    cross_project_memory: bool = False
    budget: str | float | None = None
    target: float | None = None
    max_steps: int | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)


class PaperOptions(BaseModel):
    """The sweep's ``paper:`` mapping: what ``aisci paper`` takes as flags, for every paper."""

    model_config = ConfigDict(extra="forbid")
    judge: str | None = Field(default=None, description="As `aisci paper --judge`: scripted, openai:<model>, "
                              "vllm:<path>; unset: not graded.")
    judge_base_url: str | None = Field(default=None, description="As `--judge-base-url`.")
    judge_api_key_env: str = Field(default="OPENAI_API_KEY", description="As `--judge-api-key-env`.")
    code_dev: bool = Field(default=False, description="As `--code-dev`.")
    show_rubric: bool = Field(default=False, description="As `--show-rubric`.")
    reproduce_timeout: str | float = Field(default="1h", description="As `--reproduce-timeout`.")
    reproduce_gpus: float = Field(default=0.0, ge=0, le=MAX_GPUS, description="As `--reproduce-gpus`.")


class TaskEntry(BaseModel):
    """One task of a sweep, written out (a plain string in ``tasks:`` is ``{id: it}``)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, description="A competition id in the data dir; with no data dir, a shipped "
                    "task's name or a task folder.")
    data_dir: str | None = Field(default=None, description="MLE-bench's data dir holding <id>/prepared/ (~ and "
                                 "relative paths as on the command line); unset: the sweep's; null: none.")
    metric: str | None = Field(default=None, description="As `aisci run --metric`.")
    id_column: str | None = Field(default=None, description="As `aisci run --id-column`.")
    config: str | None = Field(default=None, description="As `aisci run --config`: the competition's config.yaml.")
    leaderboard: str | None = Field(default=None, description="As `aisci run --leaderboard`.")


# A string or a mapping, told apart before validation, so that a mistake in a mapping is
# reported as that (`tasks.0.entry.datadir: Extra inputs are not permitted`), not as "not a string".
_Task = Annotated[Union[Annotated[str, Tag("name")], Annotated[TaskEntry, Tag("entry")]],
                  Discriminator(lambda v: "name" if isinstance(v, str) else "entry")]


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,23}$")
    tasks: list[_Task] = Field(default_factory=list, description="Shipped task names, task folders, or (with "
                               "a data dir) competition ids; a mapping is a TaskEntry.")
    papers: list[str] = Field(default_factory=list, description="Shipped paper names or PaperBench paper "
                              "folders, each run as `aisci paper` runs it.")
    paper: PaperOptions = Field(default_factory=PaperOptions, description="The papers' settings.")
    data_dir: str | None = Field(default=None, description="MLE-bench's data dir (`mlebench prepare --data-dir`): "
                                 "the tasks are competition ids there, unless an entry says otherwise.")
    settings: dict[str, Setting] = Field(default_factory=lambda: {"default": Setting()})
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    models: list[str] = Field(default_factory=lambda: ["baseline"], min_length=1)
    budget: str | float = "1h"
    max_concurrent: int = Field(default=4, ge=1)
    agents: int = Field(default=4, ge=1)
    policy: RunPolicy | None = Field(default=None, description="The operator's run policy for every project.")
    allow_unsandboxed: bool = False
    llm: dict[str, Any] = Field(default_factory=dict, description="The vLLM engine's settings for the vllm models "
                                "(actors.llm.config.EngineSettings: gpus, max_model_len, memory_fraction, any "
                                "vLLM engine arg).")

    @model_validator(mode="after")
    def _something_to_run(self) -> SweepSpec:
        if not self.tasks and not self.papers:
            raise ValueError("give tasks, papers, or both (a list of names or folders)")
        return self

    @field_serializer("tasks")
    def _tasks_as_written(self, tasks: list) -> list:
        # An entry's data_dir unset (the sweep's) and null (none) differ: keep only what was written.
        return [t if isinstance(t, str) else t.model_dump(exclude_unset=True) for t in tasks]

    @classmethod
    def load(cls, path: str | Path) -> SweepSpec:
        """Read and check a sweep file. Raises ``UserError`` with one line saying what is wrong."""
        data: Any = read_yaml(path, "sweep file")
        if not isinstance(data, dict):
            raise UserError(f"sweep file {path}: a YAML mapping of name, tasks, settings, seeds, models, budget, ... "
                            "(benchmarks/sweeps/tabular.yaml is an example)")
        odd = [k for k in (data.get("settings") or {}) if not isinstance(k, str)] \
            if isinstance(data.get("settings"), dict) else []
        if odd:  # YAML reads on/off/yes/no/true/false (and numbers) as values, not names
            raise UserError(f"sweep file {path}: settings: the name {str(odd[0]).lower()} is read by YAML as a "
                            f"{type(odd[0]).__name__}: quote it (e.g. \"on\": {{}})")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            raise UserError(f"sweep file {path}: {'.'.join(map(str, first['loc'])) or 'the file'}: {first['msg']}"
                            + (f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else "")) from None

    @property
    def project(self) -> str:
        return f"sweep-{self.name}"

    def task_folders(self) -> list[tuple[Path, TaskOptions]]:
        """Each task's folder and options, in ``tasks`` order, each opened and checked
        whole (``benchmarks.mlebench.task.Task``).

        Raises:
            UserError: one line naming the task (and, for a competition id, the data
                dir and the folder looked at) and what to fix.
        """
        out = []
        for raw in self.tasks:
            entry = TaskEntry(id=raw) if isinstance(raw, str) else raw
            data_dir = entry.data_dir if "data_dir" in entry.model_fields_set else self.data_dir
            options = TaskOptions(config=entry.config, leaderboard=entry.leaderboard, metric=entry.metric,
                                  id_column=entry.id_column, data_dir=data_dir)
            try:
                task = open_task(entry.id if data_dir else find_task(entry.id), options)
            except InvalidTask as e:
                where = f" in the data dir {data_dir}" if data_dir else ""
                raise UserError(f"sweep {self.name}: task {entry.id!r}{where}: {e}") from None
            out.append((task.root, task.options))  # (options: the config and leaderboard found, no data dir)
        return out

    def paper_settings(self, paper_dir: str) -> PaperSettings:
        """The ``aisci paper`` settings of the sweep's papers, for the paper at ``paper_dir``.
        Raises ``UserError`` naming the ``paper:`` key at fault."""
        p = self.paper
        try:
            judge = parse_judge(p.judge, p.judge_base_url, p.judge_api_key_env)
            timeout = parse_budget(p.reproduce_timeout, "reproduce_timeout")
        except UserError as e:
            said = str(e)  # named as the file has them, not as aisci paper's flags (the breaker)
            for flag, key in (("--judge-base-url", "judge_base_url"), ("--judge ", "judge "),
                              ("--reproduce-timeout", "reproduce_timeout")):
                said = said.replace(flag, key)
            raise UserError(f"sweep {self.name}: paper: {said}") from None
        return PaperSettings(paper=paper_dir, show_rubric=p.show_rubric, code_dev=p.code_dev, judge=judge,
                             reproduce_timeout_s=timeout, reproduce_gpus=p.reproduce_gpus)

    def jobs(self) -> list[tuple[ProjectJob, dict]]:
        """One job per grid point, with its coordinates (task: the task's folder name or
        the paper's id; setting, seed, model; track: mlebench or paper). Raises ``UserError``
        before anything starts: an unknown task (a competition id not in the data dir),
        paper or model, bad paper settings, a name too long, or a grid point twice (the
        same task, paper, seed or model listed twice)."""
        things: list[tuple[str, str, Any]] = [(f.name, str(f), options) for f, options in self.task_folders()]
        papers = [open_paper(name) for name in self.papers]  # each checked whole (Paper)
        if papers:
            self.paper_settings(str(papers[0].root))  # the judge and the limits, checked once
        things += [(paper.id, str(paper.root), paper) for paper in papers]  # a Paper in place of TaskOptions
        twice = [f"{axis} {v!r}" for axis, values in (("task", [where for _, where, _ in things]),
                                                      ("seed", self.seeds), ("model", self.models))
                 for v in {x for x in values if values.count(x) > 1}]
        if twice:
            raise UserError(f"sweep {self.name}: {', '.join(twice)} listed twice; list each once")
        out = []
        for label, where, what in things:
            for setting_name, s in self.settings.items():
                for model in self.models:
                    for seed in self.seeds:
                        project = self._project(label, setting_name, model, seed)
                        job = self._job(where, what, project, self._llm(model), s)
                        job.run_policy = job.run_policy.model_copy(update={"seed": seed})
                        job.cross_project_memory = s.cross_project_memory
                        for key in ("max_steps", "max_tokens"):
                            if getattr(s, key) is not None:
                                setattr(job.orchestrator, key, getattr(s, key))
                        out.append((job, {"task": label, "setting": setting_name, "seed": seed, "model": model,
                                          "track": job.orchestrator.track}))
        names = [j.project for j, _ in out]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise UserError(f"sweep {self.name}: two grid points make the same project {clash[0]!r} "
                            "(tasks with the same folder name, or a paper's id?); rename one")
        return out

    def _project(self, label: str, setting: str, model: str, seed: int) -> str:
        parts = [self.name, label, setting, f"s{seed}"]
        if len(self.models) > 1:
            parts.insert(3, re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[-16:])
        project = "-".join(parts)
        if len(project) > 64:
            raise UserError(f"project name {project!r} is longer than 64 characters: "
                            "use shorter sweep, task or setting names")
        return project

    def _llm(self, model: str):
        try:
            llm = parse_model(model)
        except ModelSpecError as e:  # named as the file has it, not as the --model flag
            raise UserError(f"sweep {self.name}: models: {str(e).replace('--model ', '', 1)}") from None
        return with_engine(llm, self.llm) if llm.backend == "vllm" else llm

    def _job(self, where: str, what: TaskOptions | Paper, project: str, llm, s: Setting) -> ProjectJob:
        budget = parse_budget(s.budget or self.budget)
        if isinstance(what, Paper):  # as `aisci paper` makes its job (a target score means nothing there)
            return make_paper_job(what, project, llm, budget, s.bus_memory, self.agents, self.allow_unsandboxed,
                                  self.policy)
        return make_job(where, project, llm, budget, s.target, s.bus_memory, self.agents, self.policy,
                        self.allow_unsandboxed, what)
