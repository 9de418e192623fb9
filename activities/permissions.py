"""Permission activities: check a request against the policy and the real filesystem, count failures,
and perform allowed writes atomically and idempotently (through the lockdown gate)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.approvals import ApprovalStore
from activities.db.models import PermissionFailureRow
from activities.filesystem import PathRefused, PlatformFiles, atomic_write, same_content
from activities.lockdown_gate import LockdownGate
from activities.lockdown_store import LockdownStore
from domain.activity_inputs import WriteRequest
from domain.approvals import ApprovalRules, FailureCounts, FailureRecord, operation_digest
from domain.paths import UnsafePath
from domain.permissions import Operation, PermissionDecision, PermissionPolicy, PermissionRequest


def policy_version(policy: PermissionPolicy) -> str:
    return hashlib.sha256(policy.model_dump_json().encode()).hexdigest()[:16]


class PermissionActivities:
    def __init__(self, files: PlatformFiles, policy: PermissionPolicy, store: LockdownStore, gate: LockdownGate,
                 approvals: ApprovalStore | None = None, rules: ApprovalRules | None = None) -> None:
        self.files = files
        self.policy = policy
        self.store = store
        self.gate = gate
        self.approvals = approvals or ApprovalStore(store.engine)
        self.rules = (rules or ApprovalRules()).model_copy(update={"policy_version": policy_version(policy)})

    @activity.defn(name="permissions.check")
    def check(self, request: PermissionRequest) -> PermissionDecision:
        """Policy + symlink resolution + lockdown (read-only while locked). Never writes anything. An `ask` carries
        this worker's approval rules (four eyes, time to use, policy version)."""
        locked = self.store.read().locked
        decision = self.files.check_request(request, self.policy, locked=locked)
        if decision.decision == "ask":
            decision = decision.model_copy(update={"approval": self.rules})
        return decision

    @activity.defn(name="permissions.record_failure")
    def record_failure(self, failure: FailureRecord) -> FailureCounts:
        """Count a denied request durably; returns the counts in the window (per model and in total)."""
        req = failure.request
        with Session(self.store.engine) as s, s.begin():
            s.add(PermissionFailureRow(scope=self.store.scope, model_id=req.model_id, operation=req.operation.value,
                                       target=req.path or req.host or req.target, reason=failure.reason[:2000],
                                       workflow_id=failure.workflow_id))
        since = datetime.now(timezone.utc) - timedelta(seconds=failure.window_s)
        recent = sa.select(sa.func.count()).select_from(PermissionFailureRow).where(
            PermissionFailureRow.scope == self.store.scope, PermissionFailureRow.at >= since)
        with Session(self.store.engine) as s:
            total = s.scalar(recent) or 0
            model = s.scalar(recent.where(PermissionFailureRow.model_id == req.model_id)) if req.model_id else 0
        return FailureCounts(model=model or 0, total=total, window_s=failure.window_s)

    @activity.defn(name="files.write")
    def write(self, request: WriteRequest) -> int:
        """Write atomically (temp file + rename) where the policy allowed it; a repeat with the same content is a
        no-op, so a retried activity writes once. Returns the bytes written (0 when already there)."""
        if request.operation != Operation.WRITE or request.path is None:
            raise ApplicationError("files.write needs a write request with a path", type="BadRequest",
                                   non_retryable=True)
        decision = self.check(request)  # again, right before writing: the tree may have changed
        if decision.decision == "ask" and request.approval_id is not None:
            decision = self._approved(request, decision)
        if not decision.allowed:
            raise ApplicationError(f"write refused: {decision.reason}", type="PermissionDenied", non_retryable=True)
        try:
            resolved = self.files.resolve(decision.path or request.path)
        except (UnsafePath, PathRefused) as e:
            raise ApplicationError(f"write refused: {e}", type="PermissionDenied", non_retryable=True) from None
        data = request.content.encode()
        if same_content(resolved.real, data):
            return 0
        with self.gate.admit(f"writing {decision.path}"):
            atomic_write(resolved.real, data)
        return len(data)

    def _approved(self, request: WriteRequest, decision: PermissionDecision) -> PermissionDecision:
        """An `ask` answered by a person: the approval must be for this workflow, this exact write, this policy,
        unexpired and unused (or used by this very call, retried)."""
        info = activity.info()
        asked = PermissionRequest(**request.model_dump(exclude={"content", "approval_id"}))
        assert request.approval_id is not None
        row = self.approvals.consume(request.approval_id, workflow_id=info.workflow_id or "",
                                     operation_sha256=operation_digest(asked, request.content),
                                     policy_version=self.rules.policy_version,
                                     caller=f"{info.workflow_run_id}/{info.activity_id}")
        return PermissionDecision(decision="allow", reason=f"approved by {row.approver_name} ({row.approver_id})",
                                  rule=f"person:{row.approver_id}", path=decision.path)
