"""A deterministic judge model for tests and CI: it reads what SimpleJudge shows it and scores
from evidence rules, never from constants.

It answers both calls of the protocol (benchmarks.paperbench.judge):

- file selection: every listed file, those whose path shares words with the criterion first;
- grading, from the criterion's backticked terms (how our shipped rubric names its evidence):
  ``name`` must appear (case-insensitively) in the evidence; ``words <op> number``, e.g.
  ``wine knn gain >= 0.2``, needs a line of the evidence holding all the words, followed by
  a number that satisfies the comparison. The evidence is the shown files other than docs
  (.md .txt .rst) and reproduce.sh for Code Development, reproduce.log for Code Execution, the shown files and
  reproduce.log for Result Analysis. Code Execution and Result Analysis also need a
  reproduce.log without a Python traceback. A criterion with no backticked term cannot be
  checked this way and scores 0, saying so.

A real judge is a model that reads the same messages; this one lets the whole path (reproduce,
list, select, read, validate, aggregate) run without one.
"""

from __future__ import annotations

import json
import operator
import re
from typing import Any

__all__ = ["ScriptedJudgeModel"]

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_COMPARISON = re.compile(r"^(?P<label>.+?)\s*(?P<op>>=|<=|>|<)\s*(?P<value>-?\d+(?:\.\d+)?)$")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_WORD = re.compile(r"\w+")
_FILE = re.compile(r'<file path="(?P<path>[^"]*)">\n(?P<body>.*?)\n</file>', re.DOTALL)


def _between(text: str, tag: str) -> str | None:
    start, end = text.rfind(f"<{tag}>"), text.rfind(f"</{tag}>")
    if start < 0 or end < start:
        return None
    return text[start + len(tag) + 2: end].strip("\n")


def _find(messages: list[dict[str, str]], tag: str) -> str | None:
    for m in reversed(messages):
        found = _between(m.get("content", ""), tag)
        if found is not None:
            return found
    return None


def _number_after(line: str, words: list[str]) -> float | None:
    """The first number after the last of `words` on a line that holds all of them as words."""
    tokens = [(m.group().lower(), m.end()) for m in _WORD.finditer(line)]
    ends = []
    for w in words:
        at = [end for tok, end in tokens if tok == w]
        if not at:
            return None
        ends.append(at[0])
    rest = line[max(ends):]
    number = _NUMBER.search(rest)
    return float(number.group()) if number else None


class ScriptedJudgeModel:
    """``model(messages, json_schema) -> text`` (a benchmarks.paperbench.judge.JudgeModel).

    ``calls`` counts the calls, for tests that check how often the protocol asked.
    """

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> str:
        self.calls += 1
        if "files" in schema.get("properties", {}):
            return json.dumps({"files": self._select(messages)})
        score, explanation = self._grade(messages)
        return json.dumps({"score": score, "explanation": explanation})

    def _select(self, messages: list[dict[str, str]]) -> list[str]:
        criterion = (_find(messages, "criterion") or "").lower()
        words = {w for w in _WORD.findall(criterion) if len(w) >= 3}
        listing = (_find(messages, "listing") or "").splitlines()

        def overlap(path: str) -> int:
            return len(words & set(_WORD.findall(path.lower().replace("_", " "))) | (words & {path.lower()}))
        return sorted((p for p in listing if p.strip()), key=lambda p: -overlap(p))

    def _grade(self, messages: list[dict[str, str]]) -> tuple[int, str]:
        criterion = _find(messages, "criterion") or ""
        category = _find(messages, "category") or "Code Development"
        files = {m["path"]: m["body"] for m in _FILE.finditer(_find(messages, "files") or "")}
        script = _find(messages, "reproduce.sh")
        log = _find(messages, "reproduce.log")
        log = None if log is None or log.strip() == "(does not exist)" else log

        evidence: dict[str, str] = {}
        if category == "Code Development":  # code, not a description of it: docs do not count
            evidence.update((p, t) for p, t in files.items() if not p.endswith((".md", ".txt", ".rst")))
        elif category == "Result Analysis":
            evidence.update(files)
        if category == "Code Development" and script is not None and script.strip() != "(does not exist)":
            evidence["reproduce.sh"] = script
        if category != "Code Development":
            if log is None:
                return 0, "reproduce.log does not exist, so nothing was shown to run."
            if "Traceback (most recent call last)" in log:
                return 0, "reproduce.log shows a Python traceback: the reproduction failed."
            evidence["reproduce.log"] = log

        terms = re.findall(r"`([^`]+)`", criterion)
        if not terms:
            return 0, "The criterion names no evidence term in backticks, so the scripted judge cannot check it."
        found, missing = [], []
        for term in terms:
            hit = self._check(term, evidence)
            (found if hit else missing).append(hit or f"`{term}` not found in {', '.join(evidence) or 'nothing shown'}")
        if missing:
            return 0, "Missing: " + "; ".join(missing) + ("." if not found else ". Found: " + "; ".join(found) + ".")
        return 1, "Found: " + "; ".join(found) + "."

    @staticmethod
    def _check(term: str, evidence: dict[str, str]) -> str | None:
        comparison = _COMPARISON.match(term.strip())
        if comparison:
            words = [w.lower() for w in _WORD.findall(comparison["label"])]
            op, bound = _OPS[comparison["op"]], float(comparison["value"])
            for name, text in evidence.items():
                for line in text.splitlines():
                    value = _number_after(line, words)
                    if value is not None and op(value, bound):
                        return f"`{term}` holds: {value:g} in {name}"
            return None
        for name, text in evidence.items():
            if term.lower() in text.lower():
                return f"`{term}` in {name}"
        return None
