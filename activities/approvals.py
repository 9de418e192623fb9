"""Approval grants in PostgreSQL: a person's approval bound to what it approves, used once, expiring.

The workflow records a grant once a person approved (`approvals.grant`, a local activity of our workflow); the
activity that acts (`files.write`) consumes it: same workflow, same operation digest, same policy version, not
expired, not used by another call. A retried attempt of the call that used it may use it again (idempotent).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, Session, mapped_column
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.db.models import Base
from activities.local_only import local_only
from domain.approvals import ApprovalGrant, GrantRequest


class ApprovalGrantRow(Base):
    __tablename__ = "approval_grants"

    approval_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(1000))
    operation_sha256: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(64))
    approver_id: Mapped[str] = mapped_column(String(200))
    approver_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=sa.func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    used_by: Mapped[str | None] = mapped_column(String(1200), nullable=True)


class ApprovalRefused(ApplicationError):
    def __init__(self, why: str) -> None:
        super().__init__(f"approval refused: {why}", type="ApprovalRefused", non_retryable=True)


class ApprovalStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def grant(self, req: GrantRequest) -> ApprovalGrant:
        grant = ApprovalGrant(approval_id=secrets.token_hex(16), workflow_id=req.workflow_id,
                              operation_sha256=req.operation_sha256, policy_version=req.policy_version,
                              approver=req.approver,
                              expires_at=datetime.now(timezone.utc) + timedelta(seconds=req.ttl_s))
        with Session(self.engine) as s, s.begin():
            s.add(ApprovalGrantRow(approval_id=grant.approval_id, workflow_id=grant.workflow_id,
                                   operation_sha256=grant.operation_sha256, policy_version=grant.policy_version,
                                   approver_id=grant.approver.id, approver_name=grant.approver.name,
                                   expires_at=grant.expires_at))
        return grant

    def consume(self, approval_id: str, *, workflow_id: str, operation_sha256: str, policy_version: str,
                caller: str) -> ApprovalGrantRow:
        """Use the grant for `caller` (run id/activity id), or raise ApprovalRefused saying why."""
        with Session(self.engine) as s, s.begin():
            row = s.get(ApprovalGrantRow, approval_id, with_for_update=True)
            if row is None:
                raise ApprovalRefused("no such approval")
            if row.workflow_id != workflow_id:
                raise ApprovalRefused("the approval was given for another workflow")
            if row.operation_sha256 != operation_sha256:
                raise ApprovalRefused("the approval was given for another operation or other arguments")
            if row.policy_version != policy_version:
                raise ApprovalRefused("the policy changed since the approval was given")
            if row.used_at is not None and row.used_by != caller:
                raise ApprovalRefused("the approval was already used")
            if row.used_at is None and row.expires_at <= datetime.now(timezone.utc):
                raise ApprovalRefused("the approval expired")
            if row.used_at is None:
                row.used_at, row.used_by = datetime.now(timezone.utc), caller
                s.flush()  # written in this transaction (before the row leaves the session)
            s.expunge(row)
            return row


class ApprovalActivities:
    def __init__(self, store: ApprovalStore) -> None:
        self.store = store

    @activity.defn(name="approvals.grant")
    @local_only
    def grant(self, req: GrantRequest) -> ApprovalGrant:
        """Record a person's approval (only our own workflows call this, as a local activity)."""
        if req.workflow_id != activity.info().workflow_id:
            raise ApprovalRefused("a workflow may only record approvals for itself")
        return self.store.grant(req)
