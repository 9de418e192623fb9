"""Delegation between models (the seed's LLMDelegation): who hands what to whom, within which limits.

The collaboration plan is fixed by code, not chosen by a model: generalist -> coder -> security reviewer ->
coder revises -> generalist formats. Depth and review rounds are bounded, so loops are impossible; each hop's
permission scope is the intersection of its parent's scope and its role's, so a delegate never gets more.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, ValidationError, model_validator

from domain.blobs import SHA256_PATTERN, Part, held, joined, lit

from domain.permissions import Operation
from domain.registry import Capability
from domain.requests import Usage
from domain.routing import TaskClassification
from domain.tuning import Tuning


class Role(StrEnum):
    CODER = "coder"
    REVIEWER = "reviewer"


ROLE_CAPABILITY = {Role.CODER: Capability.CODE, Role.REVIEWER: Capability.SECURITY}
# What each role may ever do; a hop gets this intersected with its parent's scope.
ROLE_SCOPE: dict[Role, frozenset[Operation]] = {
    Role.CODER: frozenset({Operation.READ, Operation.WRITE, Operation.DELEGATE}),
    Role.REVIEWER: frozenset({Operation.READ}),
}
ROOT_SCOPE = frozenset({Operation.READ, Operation.WRITE, Operation.DELEGATE})


def narrow(parent: frozenset[Operation] | set[Operation], role: Role) -> list[Operation]:
    """The delegate's scope: never more than its parent's."""
    return sorted(set(parent) & ROLE_SCOPE[role])


class DelegationLimits(BaseModel):
    max_depth: int = Field(default=3, ge=1, le=10)
    max_rounds: int = Field(default=2, ge=1, le=10, description="review -> revise rounds at most")


class ReviewVerdict(BaseModel):
    verdict: Literal["approve", "changes"]
    findings: list[str] = Field(default_factory=list, max_length=20)


REVIEW_SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["approve", "changes"]},
                   "findings": {"type": "array", "items": {"type": "string", "maxLength": 240}, "maxItems": 5}},
    "required": ["verdict", "findings"],
}


def parse_review(text: str) -> ReviewVerdict:
    """A reviewer's structured verdict. Anything unparseable is NOT an approval (fail safe). Raw line breaks inside
    strings are accepted (`strict=False`): llama.cpp's JSON grammar lets a model write them."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    try:
        return ReviewVerdict.model_validate(json.loads(match.group(0) if match else text, strict=False))
    except (ValueError, ValidationError):
        return ReviewVerdict(verdict="changes", findings=["the reviewer's answer was not a valid verdict: "
                                                          + text[:200]])


HELD_TEXTS = ("task", "context", "system", "passages")


class DelegationInput(BaseModel):
    """One hop's input (a child workflow's input, so it is in history). Its texts travel inline when small, or
    by reference when larger than the policy's blob threshold: `<name>_ref` is then the sha256 of the text in the
    blob store and `<name>` is empty; only the activities that need the text (scan, complete) read it."""

    request_id: str
    from_model: str
    role: Role
    task: str = Field(max_length=64_000)
    context: str = Field(default="", max_length=64_000, description="what the delegate needs: code, findings")
    depth: int = Field(ge=1)
    scope: list[Operation]
    limits: DelegationLimits = DelegationLimits()
    tuning: Tuning = Tuning()
    round: int = Field(default=1, ge=1, description="for a reviewer: which review round this is")
    max_tokens: int = Field(default=512, ge=1, le=8192, description="per model call of this hop")
    temperature: float = Field(default=0.2, ge=0.0, le=2.0, description="the request's temperature")
    system: str | None = Field(default=None, max_length=8_000, description="the user's system text")
    passages: str = Field(default="", max_length=300_000, description="retrieved passages (ask --rag) to cite")
    task_ref: str | None = Field(default=None, pattern=SHA256_PATTERN)
    context_ref: str | None = Field(default=None, pattern=SHA256_PATTERN)
    system_ref: str | None = Field(default=None, pattern=SHA256_PATTERN)
    passages_ref: str | None = Field(default=None, pattern=SHA256_PATTERN)

    @model_validator(mode="after")
    def _inline_or_ref(self) -> "DelegationInput":
        for name in HELD_TEXTS:
            if getattr(self, f"{name}_ref") is not None and getattr(self, name):
                raise ValueError(f"{name} is given both inline and by reference")
        return self

    def part(self, name: str) -> Part:
        """One of the hop's texts (task, context, system, passages), inline or by reference."""
        return held(getattr(self, name) or "", getattr(self, f"{name}_ref"))


def carried(**texts: Part) -> dict:
    """DelegationInput fields for texts given as parts: `carried(task=part)` -> {"task": ..., "task_ref": ...}."""
    fields: dict = {}
    for name, part in texts.items():
        assert name in HELD_TEXTS and part.max_chars is None, name
        fields[name] = part.text if part.ref is None else ""
        fields[f"{name}_ref"] = part.ref
    if "system" in fields and not fields["system"]:
        fields["system"] = None
    return fields


class DelegationRecord(BaseModel):
    """One hop, for `ask --json` and the audit: from, to, model, workflow id."""

    from_model: str = Field(serialization_alias="from", validation_alias=AliasChoices("from", "from_model"))
    to: str
    model: str
    workflow_id: str
    depth: int
    scope: list[Operation]


class DelegationResult(BaseModel):
    role: Role
    model: str
    output: str
    review: ReviewVerdict | None = None
    reviews: list[ReviewVerdict] = Field(default_factory=list)
    rounds: int = 0
    approved: bool | None = None
    usage: Usage = Usage()
    delegations: list[DelegationRecord] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


def needs_collaboration(classification: TaskClassification) -> str | None:
    """Rules first: code to write that must also be secure -> coder + security reviewer. Returns why, or None."""
    scores = classification.scores
    if scores.get(Capability.CODE, 0) >= 3 and scores.get(Capability.SECURITY, 0) >= 2:
        return (f"collaboration: code work (score {scores[Capability.CODE]:.1f}) with security requirements "
                f"(score {scores[Capability.SECURITY]:.1f}) -> coder + security reviewer")
    return None


# The prompts of a hop, composed of parts: literal text, and the hop's texts (inline, or by reference: then the
# local activity that stores the prompt composes it, workflows/blob_refs.py).
def coder_prompt(task: Part, passages: Part = lit("")) -> list[Part]:
    parts = [lit("Write the code for this task. Reply with the code and brief notes.\nTask: "), task]
    if not passages.empty:
        parts += [lit("\nAnswer from these passages and cite them by number.\n"), passages]
    return parts


def handover_text(inp: "DelegationInput") -> list[Part]:
    """Everything a hop hands to its delegate: scanned as a hand-over before the delegate sees it."""
    return joined([[inp.part(name)] for name in HELD_TEXTS])


def revise_prompt(task: Part, code: str, findings: list[str]) -> list[Part]:
    listed = "\n".join(f"- {f}" for f in findings) or "- (no details)"
    return [lit("Revise your code for the task so that it fixes every finding of the security review.\nTask: "),
            task, lit(f"\nYour code:\n{code}\nFindings:\n{listed}")]


def review_prompt(task: Part, code: Part, round_no: int) -> list[Part]:
    return [lit(f"Security review, round {round_no}. Review this code for security problems. Answer ONLY with JSON "
                f'{{"verdict": "approve" | "changes", "findings": [...]}}.\nTask: '), task, lit("\nCode:\n"), code]


def format_prompt(task: str, result: DelegationResult) -> str:
    status = ("approved by the security reviewer" if result.approved
              else "NOT approved by the security reviewer: " + "; ".join(result.review.findings if result.review else []))
    return (f"Present this result to the user clearly. Mention that it was {status}.\nUser's request: {task}\n"
            f"Result:\n{result.output}")
