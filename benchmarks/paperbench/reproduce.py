"""The reproduction step: run a submission's ``reproduce.sh`` and keep its output.

As PaperBench does it (``paperbench/reproduce.py``, openai/frontier-evals, project/paperbench):
date every file of the submission before the start (so that only what the script writes
counts as reproduced, whatever mtimes the submission came with: ours, PaperBench has no
such step), write the start time (epoch seconds) to ``reproduce.log.creation_time``, then run
``bash reproduce.sh`` from the submission folder with stdout and stderr together into
``reproduce.log``, under a time limit. The judge later shows Result Analysis leaves only the
files written after that start time (benchmarks.paperbench.submission).

This runs the script as a plain subprocess of the caller: a submission is untrusted code,
so the product passes its sandbox's command prefix as ``wrap`` (e.g. a bubblewrap call);
the library itself stays free of the product's code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel

__all__ = ["Reproduction", "prepare_reproduction", "run_reproduction"]


class Reproduction(BaseModel):
    """What a reproduction run did (PaperBench's ReproductionMetadata, the parts we keep)."""

    repro_script_exists: bool
    exit_code: int | None  # None when it timed out or never ran
    timed_out: bool
    repro_execution_time_s: float
    log_bytes: int


def run_reproduction(submission: str | Path, timeout_s: float, wrap: Sequence[str] = (),
                     env: Mapping[str, str] | None = None) -> Reproduction:
    """Run ``bash reproduce.sh`` in `submission`, writing reproduce.log and reproduce.log.creation_time.

    Args:
        submission: the submission folder (written to: the log, and whatever the script writes).
        timeout_s: wall-clock limit; past it the script's whole process group is killed.
        wrap: a command prefix to run it under (a sandbox), e.g. ``["bwrap", ..., "--"]``.
        env: the script's environment (default: this process's).

    Returns:
        The outcome; a missing reproduce.sh is not an error (it ran nothing: repro_script_exists False).
    """
    root = Path(submission).resolve()
    log = root / "reproduce.log"
    prepare_reproduction(root)
    if not (root / "reproduce.sh").is_file():
        log.write_text("reproduce.sh not found\n")
        return Reproduction(repro_script_exists=False, exit_code=None, timed_out=False,
                            repro_execution_time_s=0.0, log_bytes=log.stat().st_size)
    start = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen([*wrap, "bash", "reproduce.sh"], cwd=root, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=dict(env) if env is not None else None,
                                start_new_session=True)  # its own group: a timeout kills its children too
        try:
            code: int | None = proc.wait(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code, timed_out = None, True
    if timed_out:
        with open(log, "a") as out:
            out.write(f"\n(reproduce.sh killed after the {timeout_s:g} s limit)\n")
    return Reproduction(repro_script_exists=True, exit_code=code, timed_out=timed_out,
                        repro_execution_time_s=time.monotonic() - start, log_bytes=log.stat().st_size)


def prepare_reproduction(submission: str | Path) -> int:
    """What precedes ``bash reproduce.sh``: date every file of the submission one second
    before the start and write the start (epoch s) to ``reproduce.log.creation_time``.
    Returns the start. (For a runner of its own, e.g. a sandbox's, that then runs the
    script and writes reproduce.log as ``run_reproduction`` does.)"""
    root = Path(submission).resolve()
    started = int(time.time())
    _age(root, started - 1)
    (root / "reproduce.log.creation_time").write_text(f"{started}\n")  # ours, whatever the submission held
    return started


def _age(root: Path, when: float) -> None:
    """Date every file of the submission before the reproduction starts. The judge shows
    Result Analysis only files modified after the start; a submission could otherwise ship
    results (or a reproduce.log.creation_time) dated in the future and have them count as
    reproduced. Links are left alone (never followed)."""
    for here, _, names in os.walk(root):
        for name in names:
            path = Path(here) / name
            if not path.is_symlink() and path.is_file():
                os.utime(path, (when, when))
