"""Security endpoints: the lockdown panic button and its authenticated release, and approvals."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from domain.approvals import ApprovalVerdict, PendingApproval
from domain.lockdown import LockdownState
from domain.principals import AccessRole, Principal
from hybrid_llm import lockdown_client, permission_client
from hybrid_llm.api.routes import _UNAVAILABLE, GateDep, SettingsDep
from hybrid_llm.api.schemas import Problem

router = APIRouter(tags=["security"])

try:  # the keys helper's authentication (hybrid_llm/api/auth.py): 401 without a valid key, 403 without the role
    from hybrid_llm.api.auth import require as _require

    def _role(*roles: AccessRole):
        return Depends(_require(*roles))
except ImportError:  # until it is merged the API has no identities: it acts as the local operator, as before
    from hybrid_llm.lockdown_client import local_operator as _local_operator

    def _unauthenticated_operator() -> Principal:
        return _local_operator("api")

    def _role(*roles: AccessRole):
        return Depends(_unauthenticated_operator)

OperatorDep = Annotated[Principal, _role(AccessRole.OPERATOR)]
OverseerDep = Annotated[Principal, _role(AccessRole.OPERATOR, AccessRole.AUDITOR)]
AnyRoleDep = Annotated[Principal, _role(*AccessRole)]

_RELEASE_STATUS = {"WrongSecret": 403, "PermissionDenied": 403, "SlowDown": 429, "NotLocked": 409,
                   "StaleRelease": 409, "NoSecret": 409}


class EngageBody(BaseModel):
    model_config = {"extra": "forbid"}
    reason: str = Field(min_length=1, max_length=2000)


class ReleaseBody(BaseModel):
    model_config = {"extra": "forbid"}
    secret: str = Field(min_length=1, max_length=1024, description="Never logged or stored; only a signature "
                                                                  "bound to this epoch and principal reaches Temporal.")


class DecisionBody(BaseModel):
    model_config = {"extra": "forbid"}
    approve: bool
    note: str = Field(default="", max_length=2000)
    by: str = Field(default="api", min_length=1, max_length=200)


@router.get("/v1/lockdown", response_model=LockdownState, responses=_UNAVAILABLE)
async def lockdown_status(gate: GateDep, settings: SettingsDep, _: AnyRoleDep) -> LockdownState:
    """Locked or not, why, which trigger, when and by whom (every role: a user's request may be waiting on it)."""
    return await lockdown_client.current(await gate.client(), settings)


@router.get("/v1/lockdown/alerts", responses=_UNAVAILABLE)
async def lockdown_alerts(settings: SettingsDep, _: OverseerDep, limit: int = 20) -> list[dict]:
    """Recent security alerts for operators and auditors (principals suspended for critical inputs), newest first."""
    return await asyncio.to_thread(lockdown_client.alerts, settings, max(1, min(limit, 200)))


@router.post("/v1/lockdown/engage", response_model=LockdownState,
             responses={403: {"model": Problem}, 422: {"model": Problem}, **_UNAVAILABLE})
async def lockdown_engage(body: EngageBody, gate: GateDep, settings: SettingsDep,
                          operator: OperatorDep) -> LockdownState:
    """Panic button (operators): returns once no LLM call, file write or sandbox run can start anywhere and the
    running ones are being stopped."""
    try:
        return await lockdown_client.engage(await gate.client(), settings, body.reason, operator)
    except lockdown_client.LockdownError as e:
        raise HTTPException(_RELEASE_STATUS.get(e.kind, 400), f"{e.kind}: {e}") from None


@router.post("/v1/lockdown/release", response_model=LockdownState,
             responses={403: {"model": Problem}, 409: {"model": Problem}, 429: {"model": Problem}, **_UNAVAILABLE})
async def lockdown_release(body: ReleaseBody, gate: GateDep, settings: SettingsDep,
                           operator: OperatorDep) -> LockdownState:
    """Release with the secret (operators); paused workflows resume where they stopped. With two operators
    required, the first valid proof is recorded and the state stays locked until a second operator's."""
    try:
        return await lockdown_client.release(await gate.client(), settings, body.secret, operator)
    except lockdown_client.LockdownError as e:
        raise HTTPException(_RELEASE_STATUS.get(e.kind, 400), f"{e.kind}: {e}") from None


@router.get("/v1/approvals", response_model=list[PendingApproval], responses=_UNAVAILABLE)
async def approvals(gate: GateDep, settings: SettingsDep) -> list[PendingApproval]:
    """Permission requests waiting for a person."""
    return await permission_client.pending(await gate.client(), settings)


@router.post("/v1/approvals/{workflow_id}", responses={409: {"model": Problem}, **_UNAVAILABLE})
async def decide(workflow_id: str, body: DecisionBody, gate: GateDep) -> dict[str, str]:
    """Approve or deny a waiting request."""
    verdict = ApprovalVerdict(approve=body.approve, by=f"api:{body.by}", note=body.note)
    try:
        result = await permission_client.decide(await gate.client(), workflow_id, verdict)
    except permission_client.ApprovalError as e:
        raise HTTPException(409, str(e)) from None
    return {"workflow_id": workflow_id, "result": result}
