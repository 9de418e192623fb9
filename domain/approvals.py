"""Runtime permission requests: what a PermissionWorkflow receives, how a person decides, what comes back."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from domain.permissions import ApprovalRules, PermissionDecision, PermissionRequest  # noqa: F401 - re-exported
from domain.principals import AccessRole, Principal

MAX_WRITE_BYTES = 10 * 1024 * 1024


class PermissionInput(BaseModel):
    request: PermissionRequest
    # For a write: the content to write once allowed (text; a later issue moves large content out of history).
    content: str | None = Field(default=None, max_length=MAX_WRITE_BYTES)
    approval_timeout_s: float = Field(default=24 * 3600, gt=0, description="How long to wait for a person.")
    failure_threshold: int = Field(default=5, ge=1, description="More denied requests than this in the window "
                                                                "lock the platform down.")
    failure_window_s: float = Field(default=600, gt=0)
    requester: Principal | None = Field(default=None, description="who started the request this one serves "
                                                                  "(stamped by the entry point)")


class ApprovalVerdict(BaseModel):
    approve: bool
    by: str = Field(min_length=1, max_length=200, description="how the decider is named in the record")
    note: str = Field(default="", max_length=2000)
    principal: Principal | None = Field(default=None, description="who decided, stamped by the entry point; "
                                                                  "a verdict without one is refused")


class ApprovalGrant(BaseModel):
    """A person's approval, bound to exactly what it approves; stored once, used once, expires."""

    model_config = ConfigDict(frozen=True)

    approval_id: str = Field(min_length=8, max_length=64)
    workflow_id: str = Field(min_length=1, max_length=1000)
    operation_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    policy_version: str = Field(max_length=64)
    approver: Principal
    expires_at: datetime


class GrantRequest(BaseModel):
    """Record a person's approval: what it is bound to, who gave it, how long it is good for."""

    workflow_id: str = Field(min_length=1, max_length=1000)
    operation_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    policy_version: str = Field(max_length=64)
    approver: Principal
    ttl_s: float = Field(gt=0)


def operation_digest(request: PermissionRequest, content: str | None) -> str:
    """What an approval is bound to: the operation and its arguments (path, host, target, model, the content's
    hash), not the explanation (which the model wrote to persuade)."""
    body = request.model_dump(mode="json", exclude={"explanation"})
    body["content_sha256"] = hashlib.sha256(content.encode()).hexdigest() if content is not None else None
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def refusal(decider: Principal | None, requester: Principal | None, four_eyes: bool,
            own_code: bool = False) -> str | None:
    """Why `decider` may not decide this request, or None. Only an approver decides, and (four eyes) never their
    own request; `own_code`: the requester's own sandbox code, whose output they may accept for themselves."""
    if decider is None:
        return "a decision must come from an authenticated principal"
    if not decider.has(AccessRole.APPROVER):
        return f"{decider.label} does not have the approver role"
    if four_eyes and not own_code and requester is not None and decider.id == requester.id:
        return f"{decider.label} asked for this: another approver must decide (four eyes)"
    return None


class FailureRecord(BaseModel):
    request: PermissionRequest
    reason: str
    workflow_id: str
    window_s: float


class FailureCounts(BaseModel):
    model: int
    total: int
    window_s: float


class PermissionOutcome(BaseModel):
    decision: PermissionDecision
    decided_by: str = Field(description="policy, or the person who approved or denied")
    wrote: str | None = Field(default=None, description="the path written, when a write happened")
    bytes_written: int = 0
    failures: FailureCounts | None = None
    locked_down: bool = False


class PendingApproval(BaseModel):
    """What `approvals list` shows for a waiting request."""

    workflow_id: str
    request: PermissionRequest
    decision: PermissionDecision
    requester: Principal | None = None


def lockdown_due(counts: FailureCounts, threshold: int) -> str | None:
    """The lockdown reason when failed permission requests passed the threshold, else None."""
    if counts.total > threshold:
        return (f"{counts.total} failed permission requests in {counts.window_s:.0f}s (more than {threshold}); "
                f"{counts.model} from the last model")
    return None
