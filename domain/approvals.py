"""Runtime permission requests: what a PermissionWorkflow receives, how a person decides, what comes back."""

from __future__ import annotations

from pydantic import BaseModel, Field

from domain.permissions import PermissionDecision, PermissionRequest

MAX_WRITE_BYTES = 10 * 1024 * 1024


class PermissionInput(BaseModel):
    request: PermissionRequest
    # For a write: the content to write once allowed (text; a later issue moves large content out of history).
    content: str | None = Field(default=None, max_length=MAX_WRITE_BYTES)
    approval_timeout_s: float = Field(default=24 * 3600, gt=0, description="How long to wait for a person.")
    failure_threshold: int = Field(default=5, ge=1, description="More denied requests than this in the window "
                                                                "lock the platform down.")
    failure_window_s: float = Field(default=600, gt=0)


class ApprovalVerdict(BaseModel):
    approve: bool
    by: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=2000)


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


def lockdown_due(counts: FailureCounts, threshold: int) -> str | None:
    """The lockdown reason when failed permission requests passed the threshold, else None."""
    if counts.total > threshold:
        return (f"{counts.total} failed permission requests in {counts.window_s:.0f}s (more than {threshold}); "
                f"{counts.model} from the last model")
    return None
