"""The tools a model can call. Each goes through the bus and its scopes, so a refusal
comes back to the model as an error message it can act on.

Tool calls arrive as OpenAI tool calls; for servers without tool calling, a JSON
object in the reply text (``{"tool": name, "arguments": {...}}``, fenced or not) is
accepted instead (``parse_text_call``). A malformed call raises ``FormatError``,
which the agent loop returns to the model; nothing a model writes can crash the actor.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

import pyarrow.compute as pc

from bus import BusError, BusRefusal, RoleView
from bus.objects import sha256
from bus.paths import normalize
from bus.reground import render_map


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


_S, _I = {"type": "string"}, {"type": "integer"}
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
        "launch_experiment", "Ask for an experiment run: `command` runs in experiments/<name>/ with the project's "
        "code; it should write metrics.json there.",
        {"name": _S, "command": _S, "gpus": {"type": "number"}, "cpus": {"type": "number"}, "timeout_s": _I},
        ["name", "command"]),
    "finish": _schema("finish", "End the subtask with a short summary of what you did and what you found.",
                      {"summary": _S}, ["summary"]),
}

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
Launcher = Callable[[RoleView, dict], str]


class ToolBox:
    """Runs one agent's tool calls against its scoped view of the project."""

    def __init__(self, view: RoleView, allowed: tuple[str, ...], launcher: Launcher | None = None,
                 max_read_chars: int = 20_000):
        unknown = set(allowed) - set(SCHEMAS)
        if unknown:
            raise ValueError(f"unknown tools {sorted(unknown)}; known: {sorted(SCHEMAS)}")
        self.view, self.allowed, self.launcher, self.max_read_chars = view, allowed, launcher, max_read_chars
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
                arguments = json.loads(arguments or "{}")
            except json.JSONDecodeError as e:
                raise FormatError(f"arguments of {name} are not valid JSON ({e.msg} at char {e.pos}); "
                                  "send one JSON object") from None
        if not isinstance(arguments, dict):
            raise FormatError(f"arguments of {name} must be a JSON object")
        required = SCHEMAS[name]["function"]["parameters"]["required"]
        missing = [k for k in required if k not in arguments]
        if missing:
            raise FormatError(f"{name} needs {', '.join(missing)}")
        try:
            return getattr(self, f"_{name}")(**{k: v for k, v in arguments.items()
                                                if k in SCHEMAS[name]["function"]["parameters"]["properties"]})
        except BusRefusal as e:
            return f"ERROR (refused by the bus): {e}"
        except TypeError as e:
            raise FormatError(f"bad arguments for {name}: {e}") from None

    def _list_files(self, folder: str = "") -> str:
        table = self.view.workspace_map()
        if folder:
            prefix = folder.strip("/") + "/"
            table = table.filter([p.startswith(prefix) for p in table.column("path").to_pylist()])
        return render_map(table) or f"(no files you may read under '{folder or '/'}')"

    def _read_file(self, path: str, start: int | None = None, end: int | None = None) -> str:
        text = self.view.read_lines(path, int(start or 1), int(end) if end else None)
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

    def _launch_experiment(self, name: str, command: str, gpus: float = 0, cpus: float = 1,
                           timeout_s: int = 3600) -> str:
        if not _NAME_RE.match(str(name)):
            raise FormatError(f"experiment name {name!r}: use lower-case letters, digits, '.', '_' or '-'")
        spec = {"name": name, "command": str(command), "gpus": float(gpus), "cpus": float(cpus),
                "timeout_s": int(timeout_s)}
        row = self.view.write(f"experiments/{name}/spec.json", json.dumps(spec, indent=1), summary=f"spec: {command}"[:200])
        self.written.append(row["path"])
        if self.launcher is None:
            return f"recorded experiments/{name}/spec.json; the orchestrator will run it"
        return self.launcher(self.view, spec)

    def _finish(self, summary: str) -> str:
        raise Finished(str(summary))


_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.S)


def parse_text_call(text: str) -> tuple[str, Any] | None:
    """A tool call written as JSON in the reply text (for servers without tool calling):
    ``{"tool": "read_file", "arguments": {"path": "..."}}``. None if there is none."""
    candidates = _FENCE.findall(text) or ([text[text.find("{"): text.rfind("}") + 1]] if "{" in text else [])
    for blob in candidates:
        try:
            obj = json.loads(blob)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("tool"), str):
            return obj["tool"], obj.get("arguments", {})
    return None
