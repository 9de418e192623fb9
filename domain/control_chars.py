"""Text shown to a reviewer with its control characters made visible: ESC and the other C0/C1 controls (except
newline and tab), DEL, and the Unicode bidi/invisible format characters become `\\xNN` / `\\uNNNN` text, so
output cannot move the cursor, hide text (`\\x1b[8m`) or reorder what a person reads. Pure."""

from __future__ import annotations

import re
from typing import Any

_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def _visible(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    return _CONTROLS.sub(_visible, text)


def escape_all(value: Any) -> Any:
    """Every string inside a JSON-like value (dict keys too), escaped."""
    if isinstance(value, str):
        return escape_controls(value)
    if isinstance(value, dict):
        return {escape_all(k): escape_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [escape_all(v) for v in value]
    return value
