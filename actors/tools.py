"""The tools a model can call. Each goes through the bus and its scopes, so a refusal
comes back to the model as an error message it can act on.

Tool calls arrive as OpenAI tool calls; for servers without tool calling, JSON objects
in the reply text (``{"tool": name, "arguments": {...}}``, in prose, fenced or not,
several per reply) are accepted instead (``actors.text_protocol``). A malformed call (bad JSON, a missing or an
unknown argument, a value out of range) raises ``FormatError``, which the agent loop
returns to the model; nothing a model writes can crash the actor, and no argument a
tool does not define is passed on.

``run`` (a quick command in the sandbox, ``actors.quick_run``), ``edit_file`` and
``search_files`` (``actors.file_tools``) and ``wait_for_runs`` (``actors.run_status``)
live in modules of their own; here they are schemas and argument checks.

``launch_experiment`` only records what the agent asks for (a ``RunRequest``, kept in
the version store, and a ``run_requested`` event that gives the run its id); the
orchestrator, which watches for requests while the subtask goes, starts it at once under
the operator's policy (``actors.runs``, ``actors.run_dispatch``), so ``wait_for_runs``
can wait for its result in the same subtask.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pyarrow.compute as pc
from pydantic import ValidationError

from bus import BusError, BusRefusal, RoleView
from bus.objects import sha256
from bus.paths import normalize
from bus.scopes import WORKSPACE_FOLDERS

from . import file_tools, quick_run, run_status, self_check
from .llm import untrusted
from .runs import MIN_LEFT_S, RunRequest
from .submission import SUBMISSION, check_on_bus, run_submissions
from .text_protocol import parse_text_calls
from .workspace import prompt_map


class FormatError(Exception):
    """The model's call could not be understood (bad JSON, unknown tool, bad arguments)."""


class Finished(Exception):
    """The model called ``finish``: the subtask is done."""

    def __init__(self, summary: str):
        super().__init__(summary)
        self.summary = summary


def _schema(name: str, description: str, properties: dict, required: list[str]) -> dict:
    return {"type": "function", "function": {"name": name, "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required}}}


_S, _I, _B = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
SCHEMAS = {
    "list_files": _schema("list_files", "List the files you may read under a folder (default: all), "
                          "with version, size, author and summary.", {"folder": _S}, []),
    "read_file": _schema("read_file", "Read a text file, optionally lines start..end (1-based, inclusive).",
                         {"path": _S, "start": _I, "end": _I}, ["path"]),
    "write_file": _schema("write_file", "Create or replace a file (the old version is kept). Say in `summary` "
                          "what it is, in one line: other agents see it in their workspace map.",
                          {"path": _S, "content": _S, "summary": _S}, ["path", "content", "summary"]),
    "copy_file": _schema("copy_file", "Copy a file you may read to a path you may write (e.g. an experiment's "
                         "predictions into submission/), without passing its content through the conversation.",
                         {"src": _S, "dst": _S, "summary": _S}, ["src", "dst"]),
    "append_log": _schema("append_log", "Append a record to a log file (logs/...).", {"path": _S, "text": _S},
                          ["path", "text"]),
    "launch_experiment": _schema(
        "launch_experiment", "Start an experiment run: `command` runs in experiments/<name>/ with the project's "
        "code, sandboxed, as soon as the cluster's run queue has the CPUs/GPUs it asks for; it should write "
        "metrics.json there ({\"cv_score\": ...}). wait_for_runs waits for it and answers its result. `name` "
        "must be new in the project (a re-run gets a new name). The operator caps resources and time.",
        {"name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,47}$"}, "command": _S,
         "gpus": {"type": "number"}, "cpus": {"type": "number"}, "memory_mb": _I, "timeout_s": _I},
        ["name", "command"]),
    "check_submission": _schema(
        "check_submission", "Check a submission CSV as the grader will, against the task's sample submission: "
        "the same ids (each once, none missing), its columns, finite numbers where it scores numbers. Answers "
        "'valid: N rows, columns ...' or 'invalid: <what to change>'.",
        {"path": {"type": "string", "description": f"bus path of the CSV (default {SUBMISSION})"}}, []),
    "run": _schema(
        "run", "Run a shell command for a quick check (60 s by default, timeout_s at most 300): its working folder "
        "is a copy of code/, beside the project's folders you may read (../task/...), read-only; sandboxed, no "
        "network. Answers the exit code, the time and the output (its head and tail when long). Files it makes or "
        "changes under code/ are written back as your new versions, where you may write. Long work: "
        "launch_experiment.", {"command": _S, "timeout_s": _I}, ["command"]),
    "edit_file": _schema(
        "edit_file", "Replace one exact snippet of a text file with another (a new version; the old one is kept). "
        "`old` must occur exactly once: copy it from read_file, with a line around it when it is short.",
        {"path": _S, "old": _S, "new": _S, "summary": _S}, ["path", "old", "new"]),
    "search_files": _schema(
        "search_files", "Find the lines that hold `pattern` (a fixed string; a Python regular expression with "
        "regex true) in the files you may read under `folder` (default: all). Answers path:line: text lines.",
        {"pattern": _S, "regex": _B, "folder": _S, "ignore_case": _B, "max_matches": _I}, ["pattern"]),
    "wait_for_runs": _schema(
        "wait_for_runs", "Wait for runs (launch_experiment) to end and answer each: ended with its status, "
        "metrics and the end of its output, or still queued, waiting for a CPU/GPU, or running. Waits up to "
        "timeout_s (default 120, at most 900) while any is not ended. `runs`: names (default: the runs your role "
        "asked for).",
        {"runs": {"type": "array", "items": _S}, "timeout_s": _I}, []),
    "check_reproduction": _schema(
        "check_reproduction", "Paper projects: reproduce the submission as the grader will, and see how it went: "
        "a fresh copy of submission/ (no venv, caches or files your runs left), `bash reproduce.sh` in the "
        "sandbox under the grader's time limit (timeout_s: shorter, never longer). Answers how it ended, the "
        "files it wrote (the small ones shown), the head and tail of reproduce.log; also kept in "
        "report/selfcheck.json and report/selfcheck/reproduce.log.", {"timeout_s": _I}, []),
    "finish": _schema("finish", "End the subtask with a short summary of what you did and what you found.",
                      {"summary": _S}, ["summary"]),
}


_JSON_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,)}
_LARGEST_INT = 2**53  # an integer a JSON reader anywhere keeps exactly; line numbers and seconds are far below


def _typed(value: Any, schema: dict) -> tuple[Any, str | None]:
    """``value`` as ``schema``'s JSON type wants it, and why not (None: it fits). A whole
    float is an integer (models write 5.0); null is "not given" for numbers."""
    kind = schema.get("type")
    if kind not in _JSON_TYPES or value is None and kind in ("integer", "number"):
        return value, None
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) and kind != "boolean" or not isinstance(value, _JSON_TYPES[kind]):
        return value, f"must be {'an' if kind == 'integer' else 'a'} {kind}, not {type(value).__name__} " \
                      f"{str(value)[:40]!r}"
    if kind in ("integer", "number") and not -_LARGEST_INT <= value <= _LARGEST_INT:
        return value, f"is out of range ({str(value)[:40]})"
    return value, None


class ToolBox:
    """Runs one agent's tool calls against its scoped view of the project."""

    def __init__(self, view: RoleView, allowed: tuple[str, ...], subtask_id: str = "", max_read_chars: int = 20_000,
                 submits: bool = False, executor: quick_run.Executor | None = None, deadline: float | None = None):
        """``submits``: ``finish`` is refused while the project's submission is invalid,
        or missing when a run wrote one to copy (``Role.submits``; see ``_finish``).
        ``executor``: where ``run`` executes (``actors.quick_run``); without one the
        tool is not offered. ``deadline``: the subtask's (epoch seconds): ``run`` and
        ``wait_for_runs`` are cut to it."""
        unknown = set(allowed) - set(SCHEMAS)
        if unknown:
            raise ValueError(f"unknown tools {sorted(unknown)}; known: {sorted(SCHEMAS)}")
        allowed = tuple(t for t in allowed if t != "run" or executor is not None)
        if "check_reproduction" in allowed and not (hasattr(executor, "reproduce_submission") and _is_paper(view)):
            allowed = tuple(t for t in allowed if t != "check_reproduction")  # only where it can do something
        self.view, self.allowed, self.subtask_id, self.max_read_chars = view, allowed, subtask_id, max_read_chars
        self.executor, self.deadline = executor, deadline
        self.submits = submits
        self.written: list[str] = []
        # The seq of this attempt's agent_start: appends identical to one an earlier
        # attempt of the same subtask made are not made again (see _append_log).
        self.attempt_seq: int | None = None

    def schemas(self) -> list[dict]:
        return [SCHEMAS[name] for name in self.allowed]

    def call(self, name: str, arguments: str | dict) -> str:
        """Run a call; returns the text shown to the model. Raises FormatError or Finished."""
        if name not in self.allowed:
            raise FormatError(f"unknown tool {name!r}; your tools are: {', '.join(self.allowed)}")
        if isinstance(arguments, str):
            try:
                arguments = untrusted.loads(arguments or "{}")
            except json.JSONDecodeError as e:
                raise FormatError(f"arguments of {name} are not valid JSON ({e.msg.removesuffix(' at')} at char {e.pos}); "
                                  "send one JSON object") from None
        if not isinstance(arguments, dict):
            raise FormatError(f"arguments of {name} must be a JSON object")
        params = SCHEMAS[name]["function"]["parameters"]
        missing = [k for k in params["required"] if k not in arguments]
        if missing:
            raise FormatError(f"{name} needs {', '.join(missing)}")
        extra = sorted(set(arguments) - set(params["properties"]))
        if extra:  # refused, not dropped: a model must not believe an argument took effect
            raise FormatError(f"{name} has no argument(s) {', '.join(map(repr, extra))}; its arguments are: "
                              f"{', '.join(params['properties'])}")
        for key in list(arguments):  # the schema's types, before any tool sees a value
            arguments[key], why = _typed(arguments[key], params["properties"][key])
            if why is not None:
                raise FormatError(f"{name}: argument {key!r} {why}; see the tool's parameters")
        try:
            return getattr(self, f"_{name}")(**arguments)
        except BusRefusal as e:
            return f"ERROR (refused by the bus): {e}"
        except file_tools.ToolInputError as e:  # a value the tool cannot use: said to the model, which carries on
            return f"ERROR: {name}: {e}"
        except (TypeError, ValueError, OverflowError) as e:  # a value the types let through, that the tool cannot use
            raise FormatError(f"bad arguments for {name}: {str(e)[:300]}") from None

    def _list_files(self, folder: str = "") -> str:
        return prompt_map(self.view.workspace_map(), self.max_read_chars, folder=str(folder),
                          own=self.view.scope.write) or f"(no files you may read under '{folder or '/'}')"

    def _read_file(self, path: str, start: int | None = None, end: int | None = None) -> str:
        # A bounded read: a task file of any size can be read in parts (a line range).
        text = self.view.read_lines(path, int(start or 1), int(end) if end else None,
                                    max_bytes=4 * self.max_read_chars)
        if len(text) > self.max_read_chars:
            return text[: self.max_read_chars] + f"\n[... cut at {self.max_read_chars} characters: read a line range]"
        return text

    def _write_file(self, path: str, content: str, summary: str = "") -> str:
        row = self.view.write(path, str(content), summary=str(summary)[:200])
        self.written.append(row["path"])
        return f"wrote {row['path']} (version {row['version']}, {row['size']} bytes)"

    def _copy_file(self, src: str, dst: str, summary: str = "") -> str:
        row = self.view.write(dst, self.view.read_bytes(src), summary=str(summary or f"copy of {src}")[:200])
        self.written.append(row["path"])
        return f"copied {src} to {row['path']} (version {row['version']}, {row['size']} bytes)"

    def _edit_file(self, path: str, old: str, new: str, summary: str = "") -> str:
        row = file_tools.edit_file(self.view, path, old, new, summary)
        self.written.append(row["path"])
        return f"edited {row['path']} at line {row['line']} (version {row['version']}, {row['size']} bytes)"

    def _search_files(self, pattern: str, regex: bool = False, folder: str = "", ignore_case: bool = False,
                      max_matches: int | None = None) -> str:
        return file_tools.search_files(self.view, pattern, bool(regex), folder or "", bool(ignore_case),
                                       50 if max_matches is None else max_matches, self.max_read_chars)

    def _time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.time()

    def _run(self, command: str, timeout_s: int | None = None) -> str:
        timeout = quick_run.DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
        if not 1 <= timeout <= quick_run.MAX_TIMEOUT_S:
            raise FormatError(f"run: timeout_s must be 1 to {quick_run.MAX_TIMEOUT_S:.0f} seconds; longer work is "
                              "an experiment (launch_experiment)")
        left = self._time_left()
        if left is not None and left < MIN_LEFT_S:
            return "ERROR: run refused: the project's wall-clock budget is spent"
        scope = self.view.scope.read + self.view.scope.write
        folders = tuple(f for f in WORKSPACE_FOLDERS if any(g == "**" or g.split("/")[0] == f for g in scope))
        try:
            request = quick_run.QuickRequest(project=self.view.project.name, instance=self.view.instance,
                                             command=command, timeout_s=min(timeout, left or timeout),
                                             folders=folders)
        except ValidationError as e:
            raise FormatError(f"run: {'; '.join(err['msg'] for err in e.errors())}") from None
        result = self.executor(request)
        files = quick_run.write_back(self.view, result, command)
        self.written += [line.split()[1] for line in files if line.startswith("wrote ")]
        return quick_run.render(result, files)

    def _check_reproduction(self, timeout_s: int | None = None) -> str:
        if timeout_s is not None and timeout_s < 1:
            raise FormatError("check_reproduction: timeout_s must be at least 1 second (leave it out for the "
                              "grader's limit)")
        left = self._time_left()
        if left is not None and left < MIN_LEFT_S:
            return "ERROR: check_reproduction refused: the project's wall-clock budget is spent"
        bounds = [x for x in (timeout_s, left) if x is not None]  # the executor caps it by the operator's limit
        limit = min(bounds) if bounds else None
        check = self.executor.reproduce_submission(self.view.project.name, self.view.instance, limit)
        return self_check.render(check, [] if check.status == "refused" else self_check.record(self.view, check))

    def _wait_for_runs(self, runs: list | None = None, timeout_s: int | None = None) -> str:
        if runs is not None and (not isinstance(runs, list) or not all(isinstance(r, str) for r in runs)
                                 or not 1 <= len(runs) <= 50):
            raise FormatError("wait_for_runs: `runs` must be a list of 1 to 50 run names")
        timeout = run_status.DEFAULT_WAIT_S if timeout_s is None else timeout_s
        if not 0 <= timeout <= run_status.MAX_WAIT_S:
            raise FormatError(f"wait_for_runs: timeout_s must be 0 to {run_status.MAX_WAIT_S:.0f} seconds")
        names = None if runs is None else list(dict.fromkeys(r[:48] for r in runs))
        return run_status.wait_for_runs(self.view, names, timeout, self.deadline)

    def _append_log(self, path: str, text: str) -> str:
        text = str(text) if str(text).endswith("\n") else f"{text}\n"
        if self._appended_before(path, text):
            # A re-dispatched subtask (its first attempt died) redoes its steps: a log
            # must not get the same record twice. Writes need no such care (same content).
            return f"{path} already has this record (from an earlier attempt of this subtask)"
        row = self.view.append(path, text, summary=text.strip().splitlines()[0][:120] if text.strip() else "")
        return f"appended to {row['path']} (version {row['version']})"

    def _appended_before(self, path: str, text: str) -> bool:
        if self.attempt_seq is None:
            return False
        events = self.view.project.events()
        digest = sha256(text.encode("utf-8"))
        mask = pc.and_(pc.and_(pc.equal(events.column("kind"), "append"), pc.equal(events.column("hash"), digest)),
                       pc.and_(pc.equal(events.column("instance"), self.view.instance),
                               pc.less(events.column("seq"), self.attempt_seq)))
        try:
            rel = normalize(path)
        except BusError:
            return False  # the append itself reports the bad path
        return rel in events.filter(mask).column("path").to_pylist()

    def _launch_experiment(self, **arguments: Any) -> str:
        try:
            request = RunRequest.model_validate(arguments)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'arguments'}: {err['msg']}" for err in e.errors())
            raise FormatError(f"launch_experiment: {problems}") from None
        data = request.model_dump_json(indent=1).encode()
        earlier = self._requested_before(sha256(data))
        if earlier:  # a re-dispatched subtask asks again for what its dead attempt asked: the same run
            return f"run {earlier} was already asked for (by an earlier attempt of this subtask); see experiments/{earlier}/"
        taken = f"ERROR: a run named {request.name!r} was already asked for; runs are never re-used: choose a new name"
        if self._first_request(request.name) is not None:
            return taken
        digest = self.view.project.put_object(data)
        row = self.view.record("run_requested", f"{request.name}: {request.command}"[:200], hash=digest,
                               run=request.name, subtask=self.subtask_id or None)
        if self._first_request(request.name) != row["seq"]:  # another agent asked for this name a moment before
            return taken
        return (f"queued run {request.name}: it starts as soon as the run queue has what it asks for, in "
                f"experiments/{request.name}/ (output.log, result.json and what it writes appear there); "
                f"wait_for_runs(runs [\"{request.name}\"]) waits for it and answers its status and metrics")

    def _first_request(self, name: str) -> int | None:
        """The seq of the request that owns the run id ``name`` (the first one), if any."""
        events = self.view.project.events()
        mask = pc.and_(pc.equal(events.column("kind"), "run_requested"), pc.equal(events.column("run"), name))
        seqs = events.filter(mask).column("seq").to_pylist()
        return seqs[0] if seqs else None

    def _requested_before(self, digest: str) -> str | None:
        if self.attempt_seq is None:
            return None
        events = self.view.project.events()
        mask = pc.and_(pc.and_(pc.equal(events.column("kind"), "run_requested"), pc.equal(events.column("hash"), digest)),
                       pc.and_(pc.equal(events.column("instance"), self.view.instance),
                               pc.less(events.column("seq"), self.attempt_seq)))
        runs = events.filter(mask).column("run").to_pylist()
        return runs[0] if runs else None

    def _check_submission(self, path: str = SUBMISSION) -> str:
        return check_on_bus(self.view, path or SUBMISSION).text()

    def _finish(self, summary: str) -> str:
        """Ends the subtask (raises ``Finished``); a role that submits cannot end it with
        a submission the grader would refuse (the AiScientist release blocks its submit
        the same way), and the refusal is the call's result, so the model can fix it:

        - invalid: refused, with the check's reason;
        - missing while a run wrote a submission.csv: refused (copy one into place);
        - missing and no run wrote one (nothing was ever run, or bus memory is off):
          accepted, the summary starting ``no submission:``;
        - valid, or not checkable (the task's sample submission is not public): accepted.
        """
        summary = str(summary)
        if self.submits:
            check = check_on_bus(self.view, SUBMISSION)
            if check.kind == "invalid":
                return (f"ERROR: finish refused: {SUBMISSION} would not be graded: {check.reason}. Fix it "
                        "(check_submission says when it is valid), then call finish again")
            if check.kind == "missing":
                runs = run_submissions(self.view)
                if runs:
                    return (f"ERROR: finish refused: there is no {SUBMISSION}; copy the best run's predictions "
                            f"there (copy_file, e.g. from {runs[0]}; {len(runs)} runs wrote one), check it with "
                            "check_submission, then call finish again")
                summary = f"no submission: no run wrote a submission.csv to put in place. {summary}"
        raise Finished(summary)


def _is_paper(view: RoleView) -> bool:
    """A paper project (``aisci paper``): its task is a paper (task/paper.md or .pdf)."""
    try:
        return view.exists("task/paper.md") or view.exists("task/paper.pdf")
    except BusError:  # a role that may not read task/
        return False


def parse_text_call(text: str) -> tuple[str, Any] | None:
    """The first tool call written as JSON in the reply text (``{"tool": "read_file",
    "arguments": {...}}``, in prose or fenced), or None; all of them:
    ``actors.text_protocol.parse_text_calls``."""
    calls = parse_text_calls(text)
    return calls[0] if calls else None
