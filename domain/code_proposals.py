"""A model's answer proposing code to run: the first fenced Python or shell block."""

from __future__ import annotations

import re

from domain.sandbox import Language

_BLOCK = re.compile(r"```[ \t]*(python3?|py|bash|sh|shell)[ \t]*\n(.*?)```", re.IGNORECASE | re.DOTALL)


def proposed_code(answer: str) -> tuple[Language, str] | None:
    match = _BLOCK.search(answer)
    if match is None or not match.group(2).strip():
        return None
    language = Language.PYTHON if match.group(1).lower().startswith("py") else Language.SHELL
    return language, match.group(2).strip() + "\n"
