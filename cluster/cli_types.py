"""The command line's argument types: each turns a mistake into argparse's one line
(``aisci: argument --x: what to give``), before anything runs. Standard library only,
as ``cluster.cli`` (``aisci --help`` stays fast)."""

from __future__ import annotations

import argparse


def _seconds(text: str) -> float:
    """A non-negative, finite number of seconds (argparse turns the error into one line)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} seconds: give a number from 0 up")
    return value


def _interval(text: str) -> float:
    """Seconds between two refreshes: more than 0."""
    try:
        value = _seconds(text)
    except argparse.ArgumentTypeError:
        value = -1.0
    if value <= 0:  # one message for 0, -1 and NaN alike (the breaker saw two that disagreed)
        raise argparse.ArgumentTypeError(f"{text} seconds: give a number above 0")
    return value


MAX_AGENTS = 64  # each agent is a Ray actor, a process of ~200 MB: 100,000 of them never got to step 1
MAX_BRANCHES = 64  # OrchestratorConfig.branches' bound (not imported: --help stays fast); a test keeps them equal


def _up_to(limit: int, why: str):
    """An argparse type: a count from 1 to ``limit``, the bound said with ``why``."""
    def parse(text: str) -> int:
        value = _count(text)
        if value > limit:
            raise argparse.ArgumentTypeError(f"{text}: give at most {limit} ({why})")
        return value
    return parse


_agents = _up_to(MAX_AGENTS, "each agent is a Ray actor, a process of its own; agents wait for the model, so a few "
                 "serve many runs")
_branches = _up_to(MAX_BRANCHES, "each branch is a node grown at once; Ray runs only as many as the cluster's "
                   "CPUs and GPUs hold")


MAX_GPUS = 64  # PaperSettings.reproduce_gpus' bound (not imported: --help stays fast)


def _gpus(text: str) -> float:
    """GPUs asked of Ray: a number from 0 to ``MAX_GPUS`` (fractions as Ray takes them)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of GPUs") from None
    if not 0 <= value <= MAX_GPUS:
        raise argparse.ArgumentTypeError(f"{text}: give a number of GPUs from 0 to {MAX_GPUS}")
    return value


def _name(text: str) -> str:
    """A project's name as given: not empty (an empty --project was taken as none, and
    the run went to a new project); the bus checks the rest of the name."""
    if not text.strip():
        raise argparse.ArgumentTypeError("give a name (letters, digits, '-', '_', '.'), or leave the option out")
    return text


def _whole(text: str, least: int, why: str) -> int:
    """A whole number from ``least`` up (argparse turns the error into one line)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{text}: give {least} or more{why}")
    return value


def _seq(text: str) -> int:
    """An event's sequence number: a whole number from 0 up."""
    return _whole(text, 0, " (sequence numbers start at 1)")


def _count(text: str) -> int:
    """A whole number from 1 up."""
    return _whole(text, 1, "")
