"""Risk levels, rule hits and the verdict a scan returns."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field


class Risk(StrEnum):
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    def raised(self, steps: int = 1) -> "Risk":
        return _ORDER[min(len(_ORDER) - 1, self.rank + steps)]

    def __lt__(self, other: object) -> bool:  # type: ignore[override]
        if not isinstance(other, Risk):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:  # type: ignore[override]
        if not isinstance(other, Risk):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:  # type: ignore[override]
        if not isinstance(other, Risk):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:  # type: ignore[override]
        if not isinstance(other, Risk):
            return NotImplemented
        return self.rank >= other.rank


_ORDER = (Risk.NONE, Risk.LOW, Risk.MEDIUM, Risk.HIGH, Risk.CRITICAL)

BLOCK_AT = Risk.HIGH
"""Block when the risk is at least this."""

Source = Literal["user", "model_output", "document", "tool_output", "delegation"]


class RuleHit(BaseModel):
    """One finding. The optional fields are the evidence a reviewer needs (added later: old records lack them)."""

    rule: str = Field(description="Rule id (domain.guardrails.COMMAND_RULES / TEXT_RULES), or learned_injection / "
                                  "learned_command for the learned layer.")
    risk: Risk
    detail: str
    span: tuple[int, int] | None = Field(default=None, description="[start, end) of the text that triggered it, in "
                                                                   "the verdict's `normalized` text when that is set, "
                                                                   "else in the scanned text.")
    evidence: str | None = Field(default=None, description="That text (first 200 characters), or the decoded "
                                                           "payload / scored view when the finding was inside one.")
    score: float | None = Field(default=None, description="Learned findings: the calibrated probability of an "
                                                          "attack.")


class Verdict(BaseModel):
    verdict: Literal["allow", "block"]
    risk: Risk
    rules: list[str] = Field(default_factory=list, description="Distinct rule names, highest risk first.")
    hits: list[RuleHit] = Field(default_factory=list)
    normalized: str | None = Field(default=None, description="The normalised text when it differs from the input "
                                                             "(first 2,000 characters).")


def make_verdict(hits: list[RuleHit], normalized: str | None = None) -> Verdict:
    """One verdict from rule hits: the highest risk wins; duplicates (same rule and detail) are dropped."""
    seen: set[tuple[str, str]] = set()
    unique: list[RuleHit] = []
    for hit in hits:
        if (hit.rule, hit.detail) not in seen:
            seen.add((hit.rule, hit.detail))
            unique.append(hit)
    unique.sort(key=lambda h: -h.risk.rank)
    risk = unique[0].risk if unique else Risk.NONE
    rules = list(dict.fromkeys(h.rule for h in unique if h.risk > Risk.NONE))
    return Verdict(verdict="block" if risk >= BLOCK_AT else "allow", risk=risk, rules=rules, hits=unique,
                   normalized=normalized[:2000] if normalized is not None else None)
