"""Text from a model, made safe to keep: the one place that turns what a model sends
into strings every later layer can encode, store and show.

A model (or an endpoint) can send a lone UTF-16 surrogate (``"\\ud83d"``: half an
emoji, cut where a reply was cut), either as a raw character in the HTTP body's JSON or
as an escape inside the JSON it writes. Python keeps such a string, but no UTF-8
encoder takes it: before this, one in a decision's reason crashed the orchestrator at
its next write, and every resume again. Each is replaced by U+FFFD here, where model
output is parsed (``LLMReply``, ``ToolCall``, the JSON found in replies, tool
arguments), so nothing downstream has to care.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["clean", "loads"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings (and dict keys) replaced by
    U+FFFD; lists and dicts are walked, other values returned as they are."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def loads(text: str) -> Any:
    """``json.loads`` of model-written JSON, cleaned. Raises ``json.JSONDecodeError``."""
    return clean(json.loads(text))
