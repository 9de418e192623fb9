"""A user's request and what the platform answers (durable contracts: add optional fields only)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.approvals import PermissionOutcome
from domain.principals import Principal
from domain.registry import Capability
from domain.sandbox import SandboxOutcome

MAX_PROMPT_CHARS = 32_000
REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
MAX_MESSAGES = 256
MODEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def workflow_id_for(request_id: str) -> str:
    """One workflow per request: a retried start with the same request id finds the same workflow."""
    return f"request-{request_id}"


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str = Field(pattern=r"^(system|user|assistant)$")
    content: str


class UserRequest(BaseModel):
    # Strict: `"run_code": 0` or `"max_tokens": "12"` are type errors, not quietly converted.
    model_config = ConfigDict(extra="forbid", strict=True)

    request_id: str = Field(pattern=REQUEST_ID_PATTERN)
    # The validators below say why in words; the schema states the same rules for clients and fuzzers.
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS,
                        json_schema_extra={"pattern": r"^[^\x00]*[^\s\x00][^\x00]*$"})
    model: str | None = Field(default=None, description="Force this model id instead of routing.",
                              json_schema_extra={"pattern": MODEL_ID_PATTERN})
    max_tokens: int = Field(default=256, ge=1, le=8192)
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    system: str | None = Field(default=None, max_length=8_000)
    rag: bool = Field(default=False, description="Give the model the top-k passages of your uploads, to cite.")
    rag_k: int = Field(default=4, ge=1, le=20)
    run_code: bool = Field(default=False, description="When the answer proposes code (a ```python or ```bash "
                                                      "block), run it in a sandbox for a person to review.")
    save_as: str | None = Field(default=None, max_length=4096,
                                description="Ask the model's permission to save the answer here (e.g. downloads/a.md).")
    # The OpenAI-compatible endpoint: a whole conversation, stop sequences, JSON output, streaming.
    messages: list[ChatMessage] | None = Field(default=None, max_length=MAX_MESSAGES, description=(
        "The conversation as given (system, user, assistant turns); the model sees exactly these. `prompt` then "
        "holds their text for the guardrails and the router."))
    stop: list[str] | None = Field(default=None, max_length=4)
    json_mode: bool = Field(default=False, description="Constrain the answer to a JSON object.")
    json_schema: dict | None = Field(default=None, description="Constrain the answer to JSON of this schema "
                                                               "(where the provider can).")
    stream: bool = Field(default=False, description="Publish the answer to the workflow's stream as it is "
                                                    "generated (workflows/streaming.py).")
    end_user: str | None = Field(default=None, max_length=256, description="OpenAI's `user`: the caller's own "
                                                                         "end-user id, recorded, never trusted.")

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and any(not s or len(s) > 200 for s in v):
            raise ValueError("each stop sequence must have 1 to 200 characters")
        return v or None

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("prompt is empty: give the model something to do")
        if "\x00" in v:
            raise ValueError("prompt contains a NUL character")
        return v

    @field_validator("model")
    @classmethod
    def _model_id(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(MODEL_ID_PATTERN, v):
            raise ValueError(f"invalid model id {v!r}")
        return v


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Timings(BaseModel):
    total_ms: float = 0.0
    load_ms: float = 0.0
    inference_ms: float = 0.0


class Attempt(BaseModel):
    """One try of one model: failed tries are kept so the result explains fallbacks."""

    model: str
    ok: bool
    error: str | None = None


class RequestResult(BaseModel):
    request_id: str
    answer: str
    model: str
    provider: str
    task_type: Capability
    reasons: list[str]
    usage: Usage
    timings: Timings
    attempts: list[Attempt] = Field(default_factory=list)
    saved: PermissionOutcome | None = None
    delegations: list[dict] = Field(default_factory=list, description="hops of a collaboration: from, to, model, "
                                                                      "workflow_id, depth, scope")
    sandbox: SandboxOutcome | None = None
    citations: list[dict] = Field(default_factory=list, description="the passages the model saw (--rag): number, "
                                                                    "source, version, position, chunk id and hash")
    review_approved: bool | None = Field(default=None, description="a collaboration's security review verdict")
    finish_reason: str | None = Field(default=None, description="why generation stopped: stop or length")
    plan: str = Field(default="single", description="single (one model answered) or collaboration")
    policy_version: str | None = Field(default=None, description="the worker policy the request ran under")


class RequestInput(BaseModel):
    """What RequestWorkflow receives from an entry point. The policy (timeouts, security settings) is the worker's,
    read in the request's preflight; a `tuning` sent by an older client is ignored."""

    request: UserRequest
    principal: Principal | None = Field(default=None, description="who asked: stamped by the entry point that "
                                        "authenticated the caller, never taken from the request body")


class Progress(BaseModel):
    """Where a running request is (the workflow's `progress` query)."""

    stage: str
    model: str | None = None
