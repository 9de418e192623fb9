"""Scan points: what is scanned where, and what a verdict means for the platform."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

import re

from domain.blobs import SHA256_PATTERN
from domain.guardrails import Risk, Source, Verdict, make_verdict, scan_command, scan_text

ScanKind = Literal["command", "prompt"]


class ScanRequest(BaseModel):
    text: str = Field(default="", max_length=2_000_000)
    text_ref: str | None = Field(default=None, pattern=SHA256_PATTERN, description="The text by reference (a text "
                                 "blob's sha256), resolved by the scan activity; `text` is then empty.")
    kind: ScanKind = "prompt"
    source: Source = "user"
    semantic: bool = False
    path: str | None = Field(default=None, description="For file contents: where they will be written.")


def summary(verdict: Verdict) -> dict:
    """What history keeps of a verdict (the rules, not the text)."""
    return {"verdict": verdict.verdict, "risk": verdict.risk.value, "rules": verdict.rules[:20]}


def blocked_message(verdict: Verdict, where: str) -> str:
    return f"{where} blocked by the guardrails (risk {verdict.risk.value}: {', '.join(verdict.rules) or 'no rule'})"


def is_security_alert(verdict: Verdict) -> bool:
    """A critical hit is a SecurityAlert: it locks the platform down."""
    return verdict.risk >= Risk.CRITICAL


_FENCE = re.compile(r"```[ \t]*(bash|sh|shell|zsh|console|terminal|powershell|ps1|cmd)?[ \t]*\n(.*?)```",
                    re.IGNORECASE | re.DOTALL)
_PROMPT_LINE = re.compile(r"^\s*(?:\$|#|>)\s+(.+)$", re.MULTILINE)
_MAX_COMMANDS = 50


def embedded_commands(text: str) -> list[str]:
    """Shell commands in a model's text: fenced shell (or unlabelled) blocks and `$ ...` prompt lines."""
    commands = [body.strip() for lang, body in _FENCE.findall(text) if body.strip()]
    commands += [line.strip() for line in _PROMPT_LINE.findall(_FENCE.sub("", text))]
    return commands[:_MAX_COMMANDS]


_SCRIPT_SUFFIXES = (".sh", ".bash", ".zsh", ".ksh", ".command", ".ps1", ".bat", ".cmd")


def is_script(text: str, path: str | None) -> bool:
    return text.startswith("#!") or (path is not None and path.lower().endswith(_SCRIPT_SUFFIXES))


def scan_output(text: str, source: Source = "model_output", path: str | None = None) -> Verdict:
    """Text a model produced: injection rules on the text, command rules on every command it contains (and on
    the whole text when it is a script to be written to `path`)."""
    text_verdict = scan_text(text, source=source)
    hits = list(text_verdict.hits)
    commands = embedded_commands(text)
    if is_script(text, path):
        commands.insert(0, text)
    for command in commands:
        hits += scan_command(command).hits
    return make_verdict(hits, text_verdict.normalized)
