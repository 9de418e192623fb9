"""Per-key limits on calls that start work: model allowlist (403), requests per minute and a daily token budget
(429 with Retry-After), and ownership of what a principal starts (for scoped reads).

`await admit(request, principal, model)` is the one call a route makes before it starts a workflow
(`POST /v1/requests`, `/v1/sandboxes`, `/v1/uploads`, `/v1/search`, `/v1/chat/completions`). Reading a status does
not count against the rate. The budget is checked before a request starts, from what the principal's requests
spent today (UTC) in every LLM call, fallbacks and delegations included: one request may overshoot it by its own
spend, the next is refused.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from activities.usage import Owners, RateWindow, UsageLedger, day_start
from domain.principals import AccessRole, Principal

SEE_EVERYTHING = (AccessRole.AUDITOR, AccessRole.OPERATOR)


def _engine(request: Request):
    from hybrid_llm.api.auth import key_store

    return key_store(request).engine


def owners(request: Request) -> Owners:
    return Owners(_engine(request))


def ledger(request: Request) -> UsageLedger:
    return UsageLedger(_engine(request))


def check_model(principal: Principal, model: str | None) -> None:
    """403 when the key's allowlist does not name `model` (`auto`/None leave the choice to the router)."""
    if model is None or model == "auto" or principal.models is None:
        return
    if model not in principal.models:
        raise HTTPException(403, f"this key may not use model {model!r}; allowed: "
                                 f"{', '.join(principal.models) or 'none'}")


async def admit(request: Request, principal: Principal, model: str | None = None) -> None:
    """Allowlist, rate and budget for one call that starts work; raises the 403/429 to answer."""
    check_model(principal, model)
    record = getattr(request.state, "key_record", None)
    if record is None:  # an OIDC principal: no per-key limits
        return
    engine = _engine(request)
    if record.rpm is not None:
        wait_s = await run_in_threadpool(RateWindow(engine).hit, record.id, record.rpm)
        if wait_s is not None:
            raise HTTPException(429, f"rate limit: {record.rpm} requests per minute for this key",
                                headers={"Retry-After": str(max(1, int(wait_s + 0.999)))})
    if record.daily_tokens is not None:
        spent = await run_in_threadpool(UsageLedger(engine).spent_today, principal.id)
        if spent >= record.daily_tokens:
            from datetime import UTC, datetime

            reset = day_start() + timedelta(days=1) - datetime.now(UTC)
            raise HTTPException(429, f"daily token budget spent: {spent:,} of {record.daily_tokens:,} tokens today "
                                     "(UTC)", headers={"Retry-After": str(max(1, int(reset.total_seconds())))})


async def claim(request: Request, principal: Principal, workflow_id: str, request_id: str | None = None) -> bool:
    """Make `principal` the owner of `workflow_id` (before starting it); 409 when someone else owns that id.
    True when this call made the claim (the caller then checks that no unowned workflow, started by another entry
    point such as the local CLI, already has that id: see `release`)."""
    owner, created = await run_in_threadpool(owners(request).claim, workflow_id, principal.id, request_id)
    if owner != principal.id:
        raise HTTPException(409, f"the id of {workflow_id!r} is already used by another caller; choose another")
    return created


async def release(request: Request, principal: Principal, workflow_id: str) -> HTTPException:
    """Drop a fresh claim on an id that an existing workflow (started elsewhere) already uses; the 409 to raise."""
    await run_in_threadpool(owners(request).release, workflow_id, principal.id)
    return HTTPException(409, f"the id of {workflow_id!r} is already used by another caller; choose another")


async def may_read(request: Request, principal: Principal, workflow_id: str) -> bool:
    """Auditors and operators read everything; others what they started."""
    if principal.has(*SEE_EVERYTHING):
        return True
    return await run_in_threadpool(owners(request).owner, workflow_id) == principal.id
