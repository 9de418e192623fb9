"""PermissionWorkflow: a model (or anything acting for one) asks to do something, with an explanation.

check (policy + real paths + lockdown) -> allow | deny | ask a person (waits durably for `approvals approve/deny`)
-> allowed write happens once (idempotent) | denial counted; too many denials lock the platform down.
Every decision is an event in history.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.activity_inputs import WriteRequest
    from workflows import activity_stubs as act
    from domain.approvals import (
        ApprovalGrant,
        ApprovalRules,
        ApprovalVerdict,
        GrantRequest,
        FailureRecord,
        PendingApproval,
        PermissionInput,
        PermissionOutcome,
        lockdown_due,
        operation_digest,
        refusal,
    )
    from domain.principals import FORBIDDEN
    from domain.lockdown import EngageRequest, Trigger
    from domain.permissions import Operation, PermissionDecision
    from domain.scanning import ScanRequest, blocked_message, is_security_alert, summary
    from workflows.pausable import Pausable
    from workflows.search_attributes import AWAITING_APPROVAL

_QUICK = act.QUICK


@workflow.defn(name="PermissionWorkflow")
class PermissionWorkflow(Pausable):
    def __init__(self) -> None:
        super().__init__()
        self._input: PermissionInput | None = None
        self._pending: PermissionDecision | None = None
        self._verdict: ApprovalVerdict | None = None

    @workflow.query(name="pending")
    def pending(self) -> PendingApproval | None:
        if self._pending is None or self._input is None:
            return None
        return PendingApproval(workflow_id=workflow.info().workflow_id, request=self._input.request,
                               decision=self._pending, requester=self._input.requester)

    @workflow.update(name="decide")
    async def decide(self, verdict: ApprovalVerdict) -> str:
        self._verdict = verdict
        return "approved" if verdict.approve else "denied"

    @decide.validator
    def _only_while_waiting(self, verdict: ApprovalVerdict) -> None:
        """Rejected updates leave no event in history: only an approver who is not the requester (four eyes, unless
        the checking worker's rules say otherwise) reaches the workflow."""
        if self._pending is None or self._verdict is not None or self._input is None:
            raise ValueError("this request is not waiting for a decision")
        rules = self._pending.approval or ApprovalRules()
        why = refusal(verdict.principal, self._input.requester, rules.four_eyes)
        if why is not None:
            raise ApplicationError(f"not allowed to decide: {why}", type=FORBIDDEN, non_retryable=True)

    @workflow.run
    async def run(self, inp: PermissionInput) -> PermissionOutcome:
        self._input = inp
        await self.checkpoint()
        decision = await act.permissions_check(inp.request, **_QUICK)
        decided_by = "policy"
        grant: ApprovalGrant | None = None
        if decision.decision == "ask":
            decision, decided_by, grant = await self._ask_a_person(decision, inp)
        workflow.upsert_memo({"decision": decision.model_dump(mode="json"), "decided_by": decided_by})

        if decision.allowed and inp.content is not None:
            decision, decided_by = await self._scan_content(inp, decision, decided_by)
        if not decision.allowed:
            return await self._denied(inp, decision, decided_by)
        outcome = PermissionOutcome(decision=decision, decided_by=decided_by)
        if inp.request.operation == Operation.WRITE and inp.content is not None:
            write = WriteRequest(**inp.request.model_dump(), content=inp.content,
                                 approval_id=grant.approval_id if grant is not None else None)
            written = await self.guarded(lambda: act.files_write(write, **_QUICK))
            outcome.wrote, outcome.bytes_written = decision.path, written
        return outcome

    async def _scan_content(self, inp: PermissionInput, decision: PermissionDecision, decided_by: str
                            ) -> tuple[PermissionDecision, str]:
        """What a model writes passes the guardrails; a critical hit also locks the platform down."""
        verdict = await act.guard_scan(ScanRequest(text=inp.content or "", kind="prompt", source="model_output",
                                                   path=decision.path), start_to_close_timeout=timedelta(seconds=60))
        workflow.upsert_memo({"content_scan": summary(verdict)})
        if verdict.verdict != "block":
            return decision, decided_by
        reason = blocked_message(verdict, "the content to write")
        if is_security_alert(verdict):
            await act.lockdown_alert(EngageRequest(reason=reason, trigger=Trigger.SECURITY_ALERT,
                                                   actor=f"workflow:{workflow.info().workflow_id}"), **_QUICK)
        return PermissionDecision(decision="deny", reason=reason, rule="guardrails", path=decision.path), "guardrails"

    async def _ask_a_person(self, decision: PermissionDecision, inp: PermissionInput
                            ) -> tuple[PermissionDecision, str, ApprovalGrant | None]:
        self._pending = decision
        workflow.upsert_search_attributes([AWAITING_APPROVAL.value_set(True)])
        try:
            await workflow.wait_condition(lambda: self._verdict is not None,
                                          timeout=timedelta(seconds=inp.approval_timeout_s))
        except asyncio.TimeoutError:
            self._verdict = ApprovalVerdict(approve=False, by="timeout",
                                            note=f"no decision within {inp.approval_timeout_s:.0f}s")
        finally:
            workflow.upsert_search_attributes([AWAITING_APPROVAL.value_set(False)])
        verdict = self._verdict
        assert verdict is not None
        self._pending = None
        rules = decision.approval or ApprovalRules()
        by = verdict.principal.label if verdict.principal is not None else verdict.by
        word = "approved" if verdict.approve else "denied"
        reason = f"{word} by {by}" + (f": {verdict.note}" if verdict.note else "")
        workflow.upsert_memo({"approval": {"decision": word, "by": by, "note": verdict.note,
                                           "four_eyes": rules.four_eyes, "policy_version": rules.policy_version}})
        grant = None
        if verdict.approve and verdict.principal is not None:
            # Bound to this workflow, this exact operation and the policy that asked; used once by the acting step.
            grant = await act.approvals_grant(
                GrantRequest(workflow_id=workflow.info().workflow_id, policy_version=rules.policy_version,
                             operation_sha256=operation_digest(inp.request, inp.content),
                             approver=verdict.principal, ttl_s=rules.ttl_s), **_QUICK)
        rule = f"person:{verdict.principal.id}" if verdict.principal is not None else f"person:{verdict.by}"
        return (PermissionDecision(decision="allow" if verdict.approve else "deny", reason=reason, rule=rule,
                                   path=decision.path), by, grant)

    async def _denied(self, inp: PermissionInput, decision: PermissionDecision, decided_by: str) -> PermissionOutcome:
        counts = await act.permissions_record_failure(
            FailureRecord(request=inp.request, reason=decision.reason, workflow_id=workflow.info().workflow_id,
                          window_s=inp.failure_window_s), **_QUICK)
        outcome = PermissionOutcome(decision=decision, decided_by=decided_by, failures=counts)
        reason = lockdown_due(counts, inp.failure_threshold)
        if reason is not None:
            state = await act.lockdown_alert(EngageRequest(reason=reason, trigger=Trigger.PERMISSION_FAILURES,
                                                           actor=f"workflow:{workflow.info().workflow_id}"), **_QUICK)
            outcome.locked_down = state.locked
        return outcome
