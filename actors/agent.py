"""The specialist agent: a pure function of (role, subtask, current workspace).

``Agent.run(project, subtask)`` re-grounds on the bus, asks the model, runs its tool
calls, records the step, and repeats until the model calls ``finish`` (a role that
submits, the writer, is refused while its submission would not be graded: the refusal
is the call's result and the loop goes on; ``ToolBox._finish``), a budget is
spent, the model keeps sending calls nobody can run or the same call 3 times in a row
(``actors.repeats``), or the prompt is over the model's context window even cut down (``LLMContextOverflow``: the subtask ends with that reason,
the project goes on). It keeps nothing between invocations: one agent (and one pool of
agent actors) serves every project.
"""

from __future__ import annotations

import json
import time
from typing import Literal

from pydantic import BaseModel, Field

from bus import Bus, RoleView, Scope

from . import context, prompts
from .llm.failures import cause_of
from .llm.protocol import (
    LLM,
    ContextWindow,
    LLMBadReply,
    LLMContextOverflow,
    LLMDeadline,
    LLMError,
    LLMReply,
    LLMRequest,
)
from .llm.record import RecordingLLM
from .quick_run import Executor
from .repeats import RepeatedCall, RepeatGuard
from .roles import ROLES, Role
from .runs import MIN_LEFT_S
from .text_protocol import cut_error, no_call_error, parse_text_calls, tool_listing
from .tools import Finished, FormatError, ToolBox
from .workspace import TRANSCRIPTS, prompt_map

# Events other agents' steps produce that are not news to a re-grounding agent.
_QUIET_KINDS = ("llm_call", "agent_step", "agent_start", "refused", "context_overflow")


class Subtask(BaseModel):
    id: str = Field(description="Stable id: a retried subtask keeps it (idempotent dispatch).")
    role: str
    goal: str
    files: list[str] = Field(default_factory=list, description="Files the agent is shown in full at the start.")
    context: str = Field(default="", description="What the orchestrator passes in its prompt (besides the bus).")
    max_steps: int | None = None
    deadline: float | None = Field(default=None, description="Epoch seconds when the project's wall-clock budget "
                                   "ends: the agent stops at its next step after it (set at dispatch).")


class AgentResult(BaseModel):
    project: str
    subtask_id: str
    role: str
    instance: str
    status: Literal["finished", "failed", "budget"]
    summary: str = ""
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    files_written: list[str] = Field(default_factory=list)
    step_overhead_ms: list[float] = Field(default_factory=list, description="Per step, time outside the model.")


class Agent:
    def __init__(self, bus: Bus, llm: LLM, roles: dict[str, Role] | None = None, max_format_errors: int = 3,
                 bus_memory: bool = True, window: ContextWindow | None = None, text_tools: bool = False,
                 executor: Executor | None = None):
        """``window``: the model's context window (``LLMConfig.window()``); None if unknown.
        ``text_tools``: the server takes no tools (``LLMConfig.tool_calling`` "text"): none
        are sent; the system prompt lists them and the model writes its calls as JSON.
        ``executor``: where the ``run`` tool's commands execute (``actors.quick_run``;
        ``cluster.quick_run.SandboxExecutor``); None: roles get no ``run`` tool."""
        self.bus, self.llm, self.roles, self.executor = bus, llm, roles or ROLES, executor
        self.max_format_errors, self.window, self.text_tools = max_format_errors, window, text_tools
        # Off is the paper's ablation: an agent reads only task/ and what it writes itself;
        # all it learns of other agents' work is what the orchestrator's prompt says.
        self.bus_memory = bus_memory

    def run(self, project: str, subtask: Subtask) -> AgentResult:
        role = self.roles.get(subtask.role)
        if role is None:
            raise ValueError(f"unknown role {subtask.role!r}; known: {', '.join(sorted(self.roles))}")
        proj = self.bus.project(project)
        instance = f"{role.name}-{subtask.id}"
        view = proj.as_role(role.name, instance)
        if not self.bus_memory:
            view = proj.as_role(role.name, instance, Scope(read=("task/**",), write=view.scope.write))
        llm = RecordingLLM(self.llm, view, proj.as_role("system", instance))
        tools = ToolBox(view, role.tools, subtask.id, submits=role.submits, executor=self.executor,
                        deadline=subtask.deadline)
        repeats = RepeatGuard()
        result = AgentResult(project=project, subtask_id=subtask.id, role=role.name, instance=instance, status="failed")
        cursor = view.record("agent_start", f"{role.name}: {subtask.goal[:160]}")["seq"]
        tools.attempt_seq = cursor
        sent = [] if self.text_tools else tools.schemas()  # the tool schemas each request carries
        limits = context.budget(role.context_chars, role.max_reply_tokens, self.window,
                                overhead_chars=len(json.dumps(sent)))
        messages = [{"role": "system", "content": self._system_prompt(view, role, tools)},
                    {"role": "user", "content": self._subtask_prompt(view, subtask, limits.prompt_chars // 4)}]
        format_errors = 0
        try:
            while True:
                t0 = time.perf_counter()
                if result.steps >= (subtask.max_steps or role.max_steps) or \
                        result.prompt_tokens + result.completion_tokens >= role.max_tokens:
                    result.status, result.summary = "budget", f"stopped after {result.steps} steps: budget spent"
                    break
                # Under a second left: the tools already refuse (actors.tools), and a call
                # the deadline cuts only costs tokens (a replay then asks past its recording).
                if subtask.deadline is not None and time.time() >= subtask.deadline - MIN_LEFT_S:
                    result.status = "budget"
                    result.summary = f"stopped after {result.steps} steps: the project's wall-clock budget is spent"
                    break
                result.steps += 1
                cursor = self._reground(view, messages, cursor)
                context.fit(messages, limits.prompt_chars)
                try:
                    reply = self._ask(llm, view, messages, sent, subtask.id, limits, subtask.deadline)
                except LLMBadReply as e:  # one unusable reply (recorded): told, and asked again
                    format_errors += 1
                    messages.append({"role": "user", "content": f"ERROR: your last reply could not be used "
                                     f"({str(e)[:300]}). Answer again, in smaller calls (a big file in parts)."})
                    view.record("agent_step", f"step {result.steps}: unusable reply",
                                metrics={"format_errors": float(format_errors)})
                    if format_errors >= self.max_format_errors:
                        result.summary = f"ended after {format_errors} unusable or malformed replies in a row"
                        break
                    continue
                result.prompt_tokens += reply.prompt_tokens
                result.completion_tokens += reply.completion_tokens
                ok = self._act(reply, tools, messages, limits.reply_tokens, repeats)
                format_errors = 0 if ok else format_errors + 1
                view.record("agent_step", f"step {result.steps}: {len(reply.tool_calls)} calls",
                            metrics={"format_errors": float(format_errors)})
                # Everything but the model's own latency (recording the call included).
                result.step_overhead_ms.append((time.perf_counter() - t0 - reply.latency_s) * 1000)
                if format_errors >= self.max_format_errors:
                    result.summary = f"ended after {format_errors} malformed replies in a row"
                    break
        except Finished as done:
            result.status, result.summary = "finished", done.summary
        except LLMContextOverflow as e:  # over the window even when cut harder: this subtask cannot go on
            result.summary = f"context overflow: {e}"
        except LLMDeadline as e:  # the budget ended while the model was still answering
            result.status, result.summary = "budget", f"stopped after {result.steps} steps: {cause_of(e)}"
        except RepeatedCall as e:  # a loop: the orchestrator reads why in the complete event
            result.summary = f"repeated call: {e}"
            view.record("repeated_call", str(e)[:400], subtask=subtask.id, status="ended")
        except LLMError:
            raise  # a system fault (backend down): the orchestrator decides to retry
        except Exception as e:  # a bug or a bad reply must not kill the actor: record it
            result.summary = f"agent error: {type(e).__name__}: {e}"
        finally:
            result.files_written = tools.written
            view.record("agent_end", f"{result.status}: {result.summary[:300]}",
                        prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                        metrics={"steps": float(result.steps)})
        return result

    # -- the three parts of a step --------------------------------------------------

    @staticmethod
    def _ask(llm: LLM, view: RoleView, messages: list[dict], tools: list[dict], tag: str,
             limits: context.Limits, deadline: float | None = None) -> LLMReply:
        """One model call. A prompt the server refuses as over the model's window is cut
        harder (to what the server says fits; only the latest message kept whole) and
        sent once more; ``limits`` are lowered for the rest of the subtask, since the
        estimate that let the prompt through was wrong.

        Raises:
            LLMContextOverflow: refused again; LLMError: the backend's other faults.
        """
        try:
            return llm.complete(LLMRequest(messages=messages, tools=tools, tag=tag,
                                           max_tokens=limits.reply_tokens, deadline=deadline))
        except LLMContextOverflow as e:
            size = context.size(messages)
            lower = context.after_overflow(size, limits, e)
            limits.prompt_chars, limits.reply_tokens = lower.prompt_chars, lower.reply_tokens
            context.fit(messages, limits.prompt_chars, keep_last=1)
            view.record("context_overflow", f"prompt of {size} characters refused; cut to {context.size(messages)}",
                        metrics={"limit_tokens": float(e.limit_tokens or 0), "prompt_tokens": float(e.prompt_tokens or 0)})
            return llm.complete(LLMRequest(messages=messages, tools=tools, tag=tag,
                                           max_tokens=limits.reply_tokens, deadline=deadline))

    def _reground(self, view: RoleView, messages: list[dict], cursor: int) -> int:
        """Tell the model what other agents changed since its last step."""
        changes = view.changes_since(cursor)
        last = changes.column("seq").to_pylist()[-1] if changes.num_rows else cursor
        news = [r for r in changes.to_pylist() if r["instance"] != view.instance and r["kind"] not in _QUIET_KINDS
                and not (r["path"] or "").startswith(TRANSCRIPTS)]  # another agent's model calls are not news
        if news:
            lines = [f"- {r['kind']} {r['path'] or ''} by {r['role']}: {r['summary'] or ''}".rstrip() for r in news]
            messages.append({"role": "user", "content": "Changed by others since your last step:\n" + "\n".join(lines)})
        return last

    def _act(self, reply: LLMReply, tools: ToolBox, messages: list[dict], max_tokens: int,
             repeats: RepeatGuard) -> bool:
        """Run the reply's tool calls; returns False if none of them could be acted on
        (a reply with one good call made progress: its refused calls are told to the
        model, which carries on; only replies in a row with nothing done end the agent).

        Raises:
            Finished: the model called finish; RepeatedCall: the same call too many times in a row.
        """
        if reply.tool_calls:
            return self._act_on_calls(reply, tools, messages, max_tokens, repeats)
        return self._act_on_text(reply, tools, messages, max_tokens, repeats)

    def _act_on_calls(self, reply: LLMReply, tools: ToolBox, messages: list[dict], max_tokens: int,
                      repeats: RepeatGuard) -> bool:
        """OpenAI tool calls: each answered by a tool message with its id (the API requires it)."""
        messages.append({"role": "assistant", "content": reply.text or None,
                         "tool_calls": [{"id": c.id, "type": "function",
                                         "function": {"name": c.name, "arguments": context.echo_arguments(c.arguments)}}
                                        for c in reply.tool_calls]})
        ok = False
        for n, call in enumerate(reply.tool_calls, 1):
            if reply.cut and n == len(reply.tool_calls) and not context.is_object(call.arguments):
                out, good = f"ERROR: {cut_error(max_tokens, f'your call of {call.name}')}", False
            else:
                out, good = self._run_tool(tools, call.name, call.arguments, repeats)
            ok = ok or good
            messages.append({"role": "tool", "tool_call_id": call.id, "content": out})
        return ok

    def _act_on_text(self, reply: LLMReply, tools: ToolBox, messages: list[dict], max_tokens: int,
                     repeats: RepeatGuard) -> bool:
        """Calls written as JSON in the text (servers without tool calling)."""
        messages.append({"role": "assistant", "content": reply.text})
        calls = parse_text_calls(reply.text)
        if not calls:
            error = cut_error(max_tokens) if reply.cut else no_call_error(reply.text)
            messages.append({"role": "user", "content": f"ERROR: {error}"})
            return False
        ok, results = False, []
        for name, arguments in calls:
            out, good = self._run_tool(tools, name, arguments, repeats)
            ok = ok or good
            results.append(f"[result of {name}]\n{out}")
        if reply.cut:  # the complete calls ran; what followed them was lost
            results.append(f"ERROR: {cut_error(max_tokens, 'what followed these calls')}")
        # One message for all results: some chat templates refuse two user turns in a row.
        messages.append({"role": "user", "content": "\n\n".join(results)})
        return ok

    @staticmethod
    def _run_tool(tools: ToolBox, name: str, arguments, repeats: RepeatGuard) -> tuple[str, bool]:
        """One call's result for the model, and whether it was well formed; a repeat of
        the call before it says so (``RepeatGuard``; raises ``RepeatedCall`` at its limit)."""
        note = repeats.check(name, arguments)
        try:
            out, good = tools.call(name, arguments), True
        except FormatError as e:
            out, good = f"ERROR: {e}", False
        return (f"{out}\n\n{note}" if note else out), good

    # -- prompts ----------------------------------------------------------------------

    def _system_prompt(self, view: RoleView, role: Role, tools: ToolBox) -> str:
        return prompts.render(
            "system", role=role.name, project=view.project.name, mission=prompts.render(role.name),
            read_globs=", ".join(view.scope.read + view.scope.write), write_globs=", ".join(view.scope.write) or "nothing",
            tool_hint=tool_listing(tools.schemas()) if self.text_tools or not tools.schemas() else "",
        )

    def _subtask_prompt(self, view: RoleView, subtask: Subtask, map_chars: int) -> str:
        named = []
        for path in subtask.files:
            try:
                named.append(f"--- {path} ---\n{view.read(path)[:8000]}")
            except Exception as e:  # a refusal or a missing file is shown, not raised
                named.append(f"--- {path} --- ({e})")
        return prompts.render(
            "subtask", subtask_id=subtask.id, goal=subtask.goal,
            context=f"From the orchestrator:\n{subtask.context}\n" if subtask.context else "",
            workspace_map=prompt_map(view.workspace_map(), map_chars, own=view.scope.write) or "(none yet)",
            named_files="\n".join(named),
        )
