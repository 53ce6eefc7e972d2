"""Roles of the specialist agents: a role is a scope, a prompt, a tool set and budgets.

The scope is the bus scope of the same name (``bus.scopes.DEFAULT_SCOPES``); the prompt
is ``actors/prompts/<name>.md``. Roles are data (pydantic), so a YAML file can define
more; ``ROLES`` is the default registry.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_READ = ("list_files", "read_file", "search_files")
_BASE = _READ + ("write_file", "edit_file", "copy_file", "append_log", "finish")
_RUN = ("run",)  # a quick command in the sandbox (offered where the agent has an executor: actors.quick_run)


class Role(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Role name; also the name of its bus scope and prompt template.")
    tools: tuple[str, ...] = Field(description="Tools the model may call (see actors.tools.SCHEMAS).")
    max_steps: int = Field(default=24, gt=0, description="Model calls per subtask before it ends as 'budget'.")
    max_tokens: int = Field(default=400_000, gt=0, description="Prompt + completion tokens per subtask.")
    max_reply_tokens: int = Field(
        default=4096, gt=0,
        description="Cap on one reply, in tokens (the request's max_tokens). A write_file carries the whole file: "
        "a 20 KB script is ~6,000 tokens. A reply cut at the cap is told to the model as cut.",
    )
    submits: bool = Field(
        default=False,
        description="Its finish is refused while submission/submission.csv would not be graded, or is missing "
        "though a run wrote one (actors.tools.ToolBox._finish).",
    )
    context_chars: int = Field(
        default=48_000, gt=1000,
        description="Size of the in-invocation message list; older tool output is cut to fit (it stays on the bus).",
    )


ROLES: dict[str, Role] = {
    # Every role can search and edit what it may read and write; the ones that look at
    # data or code can run a quick command (its changes under code/ land only where the
    # role may write: the coder's and the debugger's).
    "analyst": Role(name="analyst", tools=_BASE + _RUN),
    "planner": Role(name="planner", tools=_BASE),
    # They write whole code files in one call.
    "coder": Role(name="coder", tools=_BASE + _RUN, max_reply_tokens=8192),
    # The roles that make or fix predictions can check them as the grader will; the
    # experimenter can see how its runs went (wait_for_runs).
    "experimenter": Role(name="experimenter", tools=_BASE + _RUN + ("launch_experiment", "wait_for_runs",
                                                                    "check_submission")),
    # The debugger re-runs what it fixed (a node of the solution tree: actors.tree).
    "debugger": Role(name="debugger", tools=_BASE + _RUN + ("launch_experiment", "wait_for_runs", "check_submission"),
                     max_reply_tokens=8192),
    # In a paper project the writer also reproduces its submission as the grader will
    # (check_reproduction: offered only there, actors.self_check).
    "writer": Role(name="writer", tools=_BASE + ("check_submission", "check_reproduction"), submits=True),
}
