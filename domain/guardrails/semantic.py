"""Layer 2 in pure form: the semantic activity's input and output, how a score becomes a risk, and `combine`.

The score is a k-NN margin: mean cosine similarity of the K nearest attack exemplars minus that of the K nearest
benign look-alikes (exemplars.py). Thresholds are calibrated in activities/guard.py's docstring.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from domain.guardrails.judge import judge_hit
from domain.guardrails.verdict import Risk, RuleHit, Source, Verdict, make_verdict

K = 3
# Margins at or above these are medium / high (calibrated on tests/guard_corpus, see activities/guard.py).
THRESHOLDS: dict[str, tuple[float, float]] = {"command": (0.15, 0.22), "prompt": (0.15, 0.22)}


class SemanticRequest(BaseModel):
    text: str
    kind: Literal["command", "prompt"] = "prompt"
    source: Source = "user"


class SemanticResult(BaseModel):
    risk: Risk
    score: float = Field(description="k-NN margin: attack similarity minus benign similarity (-2..2).")
    nearest: str = Field(description="The closest exemplar.")
    label: Literal["attack", "benign"] = Field(description="Label of the closest exemplar.")
    model_risk: Risk | None = Field(default=None, description="The security model's risk, when one was asked (older "
                                    "workers asked it here; the judge is now a model call of the workflow: "
                                    "domain/guardrails/judge.py).")
    model_reason: str | None = None


def risk_for(score: float, kind: str) -> Risk:
    medium, high = THRESHOLDS[kind]
    if score >= high:
        return Risk.HIGH
    if score >= medium:
        return Risk.MEDIUM
    return Risk.NONE if score < 0 else Risk.LOW


def combine(rules: Verdict, semantic: SemanticResult | None) -> Verdict:
    """Raise the rule verdict when the semantic layer is more worried; never lower it (a rule block stays)."""
    if semantic is None:
        return rules
    extra: list[RuleHit] = []
    if semantic.risk >= Risk.MEDIUM:
        extra.append(RuleHit(rule="semantic_similarity", risk=semantic.risk,
                             detail=f"margin {semantic.score:.3f}, nearest: {semantic.nearest[:80]}"))
    judged = judge_hit(semantic.model_risk, semantic.model_reason)  # recorded results of older workers
    if judged is not None:
        extra.append(judged)
    if not extra:
        return rules
    merged = make_verdict(list(rules.hits) + extra, rules.normalized)
    if merged.risk < rules.risk:  # cannot happen, but the promise is explicit
        return rules
    return merged
