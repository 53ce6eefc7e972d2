"""The agents' self-check of a paper project: the grader's reproduction, asked for from a
subtask (``actors.self_check``, the ``check_reproduction`` tool).

It is the reproduction the project's end runs (``cluster.paper_reproduce``: the
submission's files as the bus holds them, a fresh copy as ``git clean -xdf`` leaves it,
``bash reproduce.sh`` in the experiments' sandbox with the paper's folder hidden), under
the operator's time limit (``PaperSettings.reproduce_timeout_s``, from the operator's
area: the model may ask for less, never more), with the same refusal of absolute paths
of the workspace. Each check gets its own scratch folder, wiped after; what the script
wrote is reported by name and size, the small text files whole.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from actors.runs import RunPolicy
from actors.self_check import SHOWN_FILE_CHARS, SHOWN_TOTAL_CHARS, SelfCheck
from bus import Bus

from . import sandbox, scratch
from .paper_reproduce import (
    reproduce,
    reproduction_start,
    submission_files,
    workspace_paths,
    written_files,
)
from .paper_settings import settings_of

__all__ = ["self_check"]

LOG_HEAD_CHARS, LOG_TAIL_CHARS = 2_000, 6_000  # reproduce.log shown to the model: its head and its tail
_OUTPUTS_LISTED = 200  # files reported of what the script wrote


def self_check(bus: Bus, project: str, instance: str, timeout_s: float | None, policy: RunPolicy,
               hidden: tuple[str, ...]) -> SelfCheck:
    """Reproduce ``project``'s submission now, as its end will. Never raises for the
    submission's own faults (they are the result); ``status="refused"`` with the reason
    where it cannot run (not a paper project, absolute paths, the sandbox)."""
    settings = settings_of(bus, project)
    if settings is None:
        return SelfCheck(status="refused", reason="this project is not a paper's (`aisci paper`): its submission is "
                         "submission/submission.csv; check it with check_submission")
    if settings.code_dev:
        return SelfCheck(status="refused", reason="this is a Code-Dev project (PaperBench Code-Dev): the grader does "
                         "not run reproduce.sh, it reads the code")
    limit = settings.reproduce_timeout_s if timeout_s is None else min(timeout_s, settings.reproduce_timeout_s)
    proj = bus.project(project)
    files = submission_files(proj.as_role("system", instance))
    if "reproduce.sh" not in files:
        return SelfCheck(status="missing", timeout_s=limit, reason="write submission/reproduce.sh: the grader runs "
                         "`bash reproduce.sh` in a fresh copy of submission/")
    if refused := workspace_paths(bus, proj, files):
        return SelfCheck(status="refused", reason="the submission names absolute paths of this workspace, which the "
                         f"grader's fresh copy does not have (the grader refuses it): {'; '.join(refused)[:400]}; "
                         "use paths relative to reproduce.sh's folder")
    scratch_dir = str(bus.root / "scratch" / project / "selfcheck" / f"{instance}-{uuid.uuid4().hex[:8]}")
    try:
        repro, folder, _ = reproduce(files, scratch_dir, limit, policy, hidden)
        log = (folder / "reproduce.log").read_bytes()
        outputs, shown = _outputs(folder, set(files))
    except (sandbox.MountRefused, sandbox.SandboxUnavailable) as e:
        return SelfCheck(status="refused", timeout_s=limit, reason=f"the sandbox cannot run it here: {e}")
    finally:
        scratch.wipe(scratch_dir)
    status = "timeout" if repro.timed_out else "ok" if repro.exit_code == 0 else "failed"
    reason = "" if repro.exit_code is not None or repro.timed_out else "the sandbox could not start reproduce.sh"
    return SelfCheck(status=status, reason=reason, exit_code=repro.exit_code, timeout_s=limit,
                     duration_s=round(repro.repro_execution_time_s, 3), log=_head_tail(log), log_bytes=len(log),
                     outputs=outputs, shown=shown)


def _head_tail(data: bytes) -> str:
    text = data.decode("utf-8", "replace")
    if len(text) <= LOG_HEAD_CHARS + LOG_TAIL_CHARS:
        return text
    cut = len(text) - LOG_HEAD_CHARS - LOG_TAIL_CHARS
    return f"{text[:LOG_HEAD_CHARS]}\n[... {cut} characters cut ...]\n{text[-LOG_TAIL_CHARS:]}"


def _outputs(folder: Path, given: set[str]) -> tuple[dict[str, int], dict[str, str]]:
    """Files the script made or changed (dated at or after the start: the copy's files
    are dated before it, ``prepare_reproduction``), never following links; the small
    text ones are also returned whole."""
    outputs, shown, total = {}, {}, 0
    for rel, path, size in written_files(folder, given, reproduction_start(folder) or 0.0):
        if len(outputs) >= _OUTPUTS_LISTED:
            break
        outputs[rel] = size
        if size <= SHOWN_FILE_CHARS and total + size <= SHOWN_TOTAL_CHARS:
            data = path.read_bytes()
            if b"\x00" not in data:
                shown[rel] = data.decode("utf-8", "replace")
                total += len(data)
    return outputs, shown
