"""Consequences that fit the source: a critical guardrail hit in a USER's own input (the prompt of their request)
fails that request and counts against that principal (more than N in a window suspend the principal and alert the
operators); it never locks the fleet down. What models produce still does (workflows/model_call.enforce)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.lockdown import LockdownActivities
    from domain.guardrails import Risk, Verdict
    from domain.lockdown import StrikeRequest
    from domain.principals import Principal
    from domain.scanning import blocked_message, is_security_alert, summary

# Histories recorded before this patch locked the platform down for a critical prompt; they replay that way.
STRIKES_PATCH = "user-input-strikes"
UNKNOWN_PRINCIPAL = "unauthenticated"


async def enforce_user_input(owner, verdict: Verdict | None, what: str, principal: Principal | None) -> None:
    """`owner`: the workflow's model-call step (its `enforce` records findings and fails blocked steps)."""
    if verdict is None or verdict.risk == Risk.NONE or verdict.verdict != "block" or not is_security_alert(verdict) \
            or not workflow.patched(STRIKES_PATCH):
        await owner.enforce(verdict, what)
        return
    message = blocked_message(verdict, what)
    who = principal.id if principal is not None else UNKNOWN_PRINCIPAL
    outcome = await workflow.execute_activity_method(
        LockdownActivities.record_strike, StrikeRequest(principal_id=who, reason=message),
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=10))
    note = (f"; {who} is suspended ({outcome.strikes} critical inputs, more than {outcome.threshold}): "
            "operators were alerted") if outcome.suspended else \
        f"; counted against {who} ({outcome.strikes} of {outcome.threshold} allowed in the window)"
    raise ApplicationError(message + note, {**summary(verdict), "strikes": outcome.strikes,
                                            "suspended": outcome.suspended}, type="Blocked", non_retryable=True)
