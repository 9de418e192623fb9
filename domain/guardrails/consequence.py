"""What a verdict leads to, by who is behind the text: the platform's answer to a finding.

Code a person runs in the sandbox is contained by the sandbox: a blocking finding there moves it to the stronger
backend (the microVM), where its output is reviewed as always, and never locks the fleet. What models do (their
outputs, the commands and code they propose, their hand-overs) is refused when it blocks, and locks the platform down
at critical risk (a SecurityAlert).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from domain.guardrails.verdict import Risk, Verdict

Actor = Literal["user", "model"]


class Consequence(StrEnum):
    RUN = "run"  # nothing blocks: the usual policy applies (a medium risk still prefers the microVM)
    ISOLATE = "isolate"  # run only on the stronger backend; the output is reviewed by a person
    BLOCK = "block"  # refuse; nothing runs
    LOCKDOWN = "lockdown"  # refuse and engage lockdown


def consequence(verdict: Verdict, actor: Actor) -> Consequence:
    if verdict.verdict != "block":
        return Consequence.RUN
    if actor == "user":
        return Consequence.ISOLATE
    return Consequence.LOCKDOWN if verdict.risk >= Risk.CRITICAL else Consequence.BLOCK
