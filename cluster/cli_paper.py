"""``aisci paper PAPER_DIR``: reproduce a PaperBench paper (``cluster.paper_run``).

Everything the user gives is checked before Ray starts (the paper folder whole, the
model, the judge, the budget, the project's name): a mistake is one line.
"""

from __future__ import annotations

import argparse

from actors.llm.config import parse_model
from bus import Bus

from .cli_run import _connect, _operator_policy, check_model, finish
from .display import untrusted
from .driver import console
from .engine import check_vllm
from .errors import UserError
from .paper_end import ended_line
from .paper_grade import parse_judge
from .paper_run import make_paper_job, open_paper, run_paper
from .paper_settings import PaperSettings, settings_of
from .run import parse_budget

__all__ = ["cmd_paper"]


def cmd_paper(bus: Bus, args: argparse.Namespace) -> None:
    paper = open_paper(args.paper)
    judge = parse_judge(args.judge, args.judge_base_url, args.judge_api_key_env)
    if judge is not None and judge.kind == "vllm":
        check_vllm(judge.llm)  # a local path that is not there: said before Ray starts
    llm = parse_model(args.model, base_url=args.base_url, api_key_env=args.api_key_env)
    settings = PaperSettings(paper=str(paper.root), show_rubric=args.show_rubric, code_dev=args.code_dev,
                             judge=judge, reproduce_timeout_s=parse_budget(args.reproduce_timeout, "--reproduce-timeout"),
                             reproduce_gpus=args.reproduce_gpus)
    job = make_paper_job(paper, args.project, llm, parse_budget(args.budget), not args.no_bus_memory, args.agents,
                         args.allow_unsandboxed, _operator_policy(args))
    if job.project in bus.projects():
        before = settings_of(bus, job.project)
        if before is None or before.paper != settings.paper:
            raise UserError(f"project {job.project!r} exists and does not work on {paper.id}: give a new --project")
        if (line := ended_line(bus, job.project)) is not None:
            console.print(untrusted(line))
            return
    job.llm = check_model(job.llm)
    _connect(args.address)
    finish([run_paper(bus, job, settings, grace_s=args.grace)])
