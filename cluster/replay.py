"""``aisci replay PROJECT``: run a recorded project again with no model.

Every model call of a project is on its bus (``logs/llm/<instance>/<seq>.json``,
``actors.llm.record``), failed ones included. A replay starts a new project from the
same job (task, orchestrator settings, agents, run policy) whose model is the
scripted backend playing those calls back, one script per request tag (each subtask's
id, and "orchestrator"), so concurrent subtasks replay deterministically; a call that
failed raises the same error at the same point, so the replay of a crashed run ends
the same way. At full speed by default (the recorded latencies are dropped);
``--realtime`` keeps them. What a replay cannot reproduce: a stop for a spent
wall-clock budget (it is faster), and experiments whose own results vary. So a
request past a tag's recorded calls (the recorded project had stopped that subtask or
the orchestrator there, most often at its budget's end between two calls) raises
``RecordingEnded``, a deadline: the replay stops there as the recorded project did,
instead of failing.
"""

from __future__ import annotations

import datetime as dt

from actors.llm.record import recorded_script
from bus import Bus

from .errors import UserError
from .job import ProjectJob, load_job

__all__ = ["replay_job"]


def replay_job(bus: Bus, project: str, into: str | None = None, realtime: bool = False) -> ProjectJob:
    """The job that replays ``project`` into the new project ``into`` (default
    ``<project>-replay-<time>``).

    Raises:
        NotFound: no such project, or it has no job; UserError: it recorded no model
        call, or ``into`` exists already.
    """
    job = load_job(bus, project)
    if job.orchestrator.track == "paper":  # refused before Ray starts (the breaker met a grader's config error)
        raise UserError(f"{project} reproduces a paper: `aisci replay` replays projects of `aisci run` only; "
                        f"its model calls are on the bus (`aisci bus log {project} --kind llm_call`)")
    script = recorded_script(bus.project(project).as_role("viewer"), realtime)
    if not script:
        raise UserError(f"{project} recorded no model calls (logs/llm/ is empty): nothing to replay; a project of "
                        "the baseline model is deterministic, run it again with `aisci run`")
    into = into or f"{project}-replay-{dt.datetime.now():%Y%m%d-%H%M%S}"
    if into in bus.projects():
        raise UserError(f"project {into!r} exists already: give a new name with --project")
    window = job.llm.window()  # prompts cut as they were: the same window, now stated
    llm = job.llm.model_copy(update={"backend": "scripted", "script": script, "script_by_step": False,
                                     "script_is_recording": True,
                                     "base_url": "", "context_tokens": window.tokens if window else None})
    orchestrator = job.orchestrator.model_copy(update={"project": into})
    if orchestrator.policy == "auto" and job.llm.backend == "baseline":
        # The recorded project's steps were the baseline's (its agents' calls are what was
        # recorded): "auto" with the scripted model would ask the script for decisions it
        # never had (the breaker's replay stopped at once on ScriptExhausted, exit 0).
        orchestrator = orchestrator.model_copy(update={"policy": "baseline"})
    return job.model_copy(update={"orchestrator": orchestrator, "llm": llm})
