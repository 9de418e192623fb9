"""Layer 2, learned: the pure half of the prompt-injection classifier (views, scoring math, how a score becomes a
finding). Loading the artifact and embedding the views (MiniLM, torch) live in activities/guard.py.

A text is judged through several *views*, each embedded and scored by a logistic-regression head; the text's logit
is the highest view logit, so an attack hidden by an encoding is scored on what it says:
  the normalised text (NFKC, invisible characters dropped, look-alike letters folded), leetspeak undone, letters
  spaced or dotted apart joined, reversed text turned round, and base64 / hex / URL / ROT13 payloads decoded.
Long texts are cut into windows (an instruction buried in a document is scored on its own window).

The head's logit and the rules' risk are combined by a calibrated score (logistic, fitted on held-out rows by
scripts/train_guard_head.py): P(attack | head logit, rule risk). The artifact carries the thresholds.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from domain.guardrails import normalize as norm
from domain.guardrails.verdict import Risk, RuleHit, Verdict, make_verdict

MAX_VIEWS = 8
WINDOW_CHARS = 600
MAX_WINDOWS = 6
RULE_LEVELS = ("none", "low", "medium")  # rule risks the combiner sees; high and critical already block

def views(text: str) -> list[str]:
    """The texts the head scores for `text` (first: the normalised text). Pure and deterministic."""
    n = norm.normalize(text).text
    out: list[str] = []
    if len(n) <= WINDOW_CHARS:
        out.append(n)
    else:
        out.append(n[:WINDOW_CHARS])
        parts = re.split(r"(?<=[.!?\n])\s+", n)
        buf = ""
        for p in parts:
            if len(buf) + len(p) > WINDOW_CHARS and buf:
                out.append(buf)
                buf = ""
            buf += p + " "
            if len(out) > MAX_WINDOWS:
                break
        if buf and len(out) <= MAX_WINDOWS:
            out.append(buf)
    head = out[0]
    out += [t for _how, t in norm.deobfuscated(head)]
    for _enc, decoded in norm.decoded_payloads(n[:norm.MAX_DECODE_INPUT])[:3]:
        out.append(norm.normalize(decoded).text[:WINDOW_CHARS])
    rot = norm.rot13(head)
    if norm.common_words(rot) > norm.common_words(head) + 2:
        out.append(rot)
    seen: list[str] = []
    for v in out:
        v = v.strip()
        if v and v not in seen:
            seen.append(v)
    return seen[:MAX_VIEWS] or [""]


class Head(BaseModel):
    """A trained head and its calibration, as shipped in the artifact (weights stored beside it)."""

    kind: Literal["command", "prompt"]
    bias: float
    combine: list[float] = Field(description="Calibrated combiner: intercept, head-logit weight, then one weight per "
                                             "rule level in RULE_LEVELS[1:] (low, medium).")
    medium_at: float = Field(description="Combined probability at or above which the finding is medium.")
    block_at: float = Field(description="Combined probability at or above which the finding blocks (high).")


class LearnedResult(BaseModel):
    kind: Literal["command", "prompt"]
    logit: float = Field(description="Highest head logit over the views.")
    probability: float = Field(description="Calibrated P(attack) from the head logit and the rules' risk.")
    risk: Risk
    view: int = Field(description="Which view scored highest (0: the normalised text).")
    evidence: str = Field(description="The text of that view (first 200 characters).")
    model: str = Field(description="Artifact id: sha256 of the weights, first 12 hex digits.")


def _sigmoid(x: float) -> float:
    import math

    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


def calibrated(head: Head, logit: float, rule_risk: Risk) -> float:
    c = head.combine
    z = c[0] + c[1] * logit
    level = rule_risk.value if rule_risk.value in RULE_LEVELS else "medium"
    for i, name in enumerate(RULE_LEVELS[1:], start=2):
        if level == name:
            z += c[i]
    return _sigmoid(z)


def risk_of(head: Head, p: float) -> Risk:
    if p >= head.block_at:
        return Risk.HIGH
    if p >= head.medium_at:
        return Risk.MEDIUM
    return Risk.NONE


def combine_learned(rules: Verdict, learned: LearnedResult | None) -> Verdict:
    """Add the learned finding to the rule verdict: raises it, never lowers it; never critical on its own (a learned
    score blocks, it does not lock the platform down)."""
    if learned is None or learned.risk < Risk.MEDIUM:
        return rules
    hit = RuleHit(rule="learned_injection" if learned.kind == "prompt" else "learned_command", risk=learned.risk,
                  detail=f"p={learned.probability:.3f} (logit {learned.logit:.2f}, view {learned.view}, model "
                         f"{learned.model}): {learned.evidence[:120]!r}",
                  score=round(learned.probability, 4), evidence=learned.evidence[:200])
    merged = make_verdict(list(rules.hits) + [hit], rules.normalized)
    return merged if merged.risk >= rules.risk else rules
