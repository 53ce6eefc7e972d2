"""Prompts are data: Markdown templates in ``actors/prompts/`` with ``$variables``.

A template that names a variable the caller did not pass fails loudly (``PromptError``
names the template and the variable) instead of sending a model a prompt with a hole.
"""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path

PROMPT_DIR = Path(__file__).parent / "prompts"


class PromptError(Exception):
    pass


@lru_cache(maxsize=64)
def load(name: str) -> string.Template:
    path = PROMPT_DIR / f"{name}.md"
    try:
        return string.Template(path.read_text())
    except FileNotFoundError:
        raise PromptError(f"no prompt template {name!r} (looked for {path})") from None


def render(name: str, **variables: object) -> str:
    try:
        return load(name).substitute({k: str(v) for k, v in variables.items()})
    except KeyError as e:
        raise PromptError(f"prompt template {name!r} needs the variable {e.args[0]!r}, which was not given") from None
    except ValueError as e:
        raise PromptError(f"prompt template {name!r} is malformed: {e}") from None
