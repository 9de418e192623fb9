"""Security endpoints: the lockdown panic button and its authenticated release, and approvals."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from domain.approvals import ApprovalVerdict, PendingApproval
from domain.lockdown import LockdownState
from domain.principals import AccessRole, Principal
from hybrid_llm import lockdown_client, permission_client
from hybrid_llm.api.auth import actor_label, authenticate, require
from hybrid_llm.api.routes import _AUTH, _UNAVAILABLE, AnyRoleDep, GateDep, SettingsDep
from hybrid_llm.api.schemas import Problem

router = APIRouter(tags=["security"], dependencies=[Depends(authenticate)], responses=_AUTH)
OperatorDep = Annotated[Principal, Depends(require(AccessRole.OPERATOR))]
ApproverDep = Annotated[Principal, Depends(require(AccessRole.APPROVER))]
ApprovalReaderDep = Annotated[Principal, Depends(require(AccessRole.APPROVER, AccessRole.AUDITOR,
                                                         AccessRole.OPERATOR))]

_RELEASE_STATUS = {"WrongSecret": 403, "SlowDown": 429, "NotLocked": 409, "StaleRelease": 409, "NoSecret": 409}


class EngageBody(BaseModel):
    model_config = {"extra": "forbid"}
    reason: str = Field(min_length=1, max_length=2000)


class ReleaseBody(BaseModel):
    model_config = {"extra": "forbid"}
    secret: str = Field(min_length=1, max_length=1024, description="Never logged or stored; only an epoch-bound "
                                                                  "token derived from it reaches Temporal.")


class DecisionBody(BaseModel):
    model_config = {"extra": "forbid"}
    approve: bool
    note: str = Field(default="", max_length=2000)


@router.get("/v1/lockdown", response_model=LockdownState, responses=_UNAVAILABLE)
async def lockdown_status(gate: GateDep, settings: SettingsDep, principal: AnyRoleDep) -> LockdownState:
    """Locked or not, why, which trigger, when and by whom."""
    return await lockdown_client.current(await gate.client(), settings)


@router.post("/v1/lockdown/engage", response_model=LockdownState, responses={422: {"model": Problem}, **_UNAVAILABLE})
async def lockdown_engage(body: EngageBody, gate: GateDep, settings: SettingsDep,
                          principal: OperatorDep) -> LockdownState:
    """Panic button: returns once no LLM call, file write or sandbox run can start anywhere."""
    return await lockdown_client.engage(await gate.client(), settings, body.reason, actor=actor_label(principal))


@router.post("/v1/lockdown/release", response_model=LockdownState,
             responses={403: {"model": Problem}, 409: {"model": Problem}, 429: {"model": Problem}, **_UNAVAILABLE})
async def lockdown_release(body: ReleaseBody, gate: GateDep, settings: SettingsDep,
                           principal: OperatorDep) -> LockdownState:
    """Release with the secret; paused workflows resume where they stopped."""
    try:
        return await lockdown_client.release(await gate.client(), settings, body.secret,
                                             actor=actor_label(principal))
    except lockdown_client.LockdownError as e:
        raise HTTPException(_RELEASE_STATUS.get(e.kind, 400), f"{e.kind}: {e}") from None


@router.get("/v1/approvals", response_model=list[PendingApproval], responses=_UNAVAILABLE)
async def approvals(gate: GateDep, settings: SettingsDep, principal: ApprovalReaderDep) -> list[PendingApproval]:
    """Permission requests waiting for a person."""
    return await permission_client.pending(await gate.client(), settings)


@router.post("/v1/approvals/{workflow_id}", responses={409: {"model": Problem}, **_UNAVAILABLE})
async def decide(workflow_id: str, body: DecisionBody, gate: GateDep, principal: ApproverDep) -> dict[str, str]:
    """Approve or deny a waiting request (as the authenticated approver; the body cannot name anyone)."""
    verdict = ApprovalVerdict(approve=body.approve, by=actor_label(principal), note=body.note, principal=principal)
    try:
        result = await permission_client.decide(await gate.client(), workflow_id, verdict)
    except permission_client.ApprovalForbidden as e:
        raise HTTPException(403, str(e)) from None
    except permission_client.ApprovalError as e:
        raise HTTPException(409, str(e)) from None
    return {"workflow_id": workflow_id, "result": result}
