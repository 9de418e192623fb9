"""Sandbox endpoints: start a run, list and show runs, approve or reject their output."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from domain.control_chars import escape_all
from domain.principals import AccessRole, Principal
from domain.sandbox import (Backend, Language, Limits, Origin, ReviewDecision, SandboxOutcome, SandboxSpec,
                            check_caps)
from hybrid_llm import sandbox_client
from hybrid_llm.api.auth import actor_label, authenticate, require
from hybrid_llm.api.limits import SEE_EVERYTHING, admit, may_read, owners
from hybrid_llm.api.routes import _AUTH, _UNAVAILABLE, GateDep, ReaderDep, SettingsDep, UserDep
from hybrid_llm.api.schemas import Problem

router = APIRouter(tags=["sandboxes"], dependencies=[Depends(authenticate)], responses=_AUTH)
ApproverDep = Annotated[Principal, Depends(require(AccessRole.APPROVER))]


class ExecBody(BaseModel):
    model_config = {"extra": "forbid"}
    command: list[str] = Field(default_factory=list, description="argv; or give `code`")
    code: str | None = None
    language: Language = Language.SHELL
    files: dict[str, str] = Field(default_factory=dict)
    backend: Backend | None = None
    limits: Limits = Limits()
    network_hosts: list[str] = Field(default_factory=list)
    approve: bool = Field(default=False, description="approve the output up front")
    wait: bool = Field(default=False, description="answer with the outcome (only with approve)")


class DecisionBody(BaseModel):
    model_config = {"extra": "forbid"}
    approve: bool
    note: str = Field(default="", max_length=2000)


@router.post("/v1/sandboxes", status_code=202, responses={422: {"model": Problem}, **_UNAVAILABLE})
async def start_sandbox(body: ExecBody, request: Request, gate: GateDep, settings: SettingsDep,
                        principal: UserDep) -> dict:
    """Start a sandbox run; **202** `{"workflow_id", "status_url"}`, or the outcome with `approve` + `wait`
    (approving up front needs the approver role too)."""
    if body.approve and not principal.has(AccessRole.APPROVER):
        raise HTTPException(403, "approving a sandbox's output up front needs the approver role")
    await admit(request, principal)
    try:
        spec = SandboxSpec(command=tuple(body.command), code=body.code, language=body.language, files=body.files,
                           backend=body.backend, limits=body.limits, network_hosts=tuple(body.network_hosts),
                           origin=Origin(actor="user", name=actor_label(principal)))
        check_caps(spec.limits, settings.sandbox_caps())  # above a cap: refused, never clamped
    except ValueError as e:
        raise HTTPException(422, f"invalid sandbox request: {e}") from None
    decision = (ReviewDecision(approve=True, by=actor_label(principal), note="approved up front",
                               principal=principal) if body.approve else None)
    handle = await sandbox_client.start(await gate.client(), settings, spec, decision, requester=principal)
    await run_in_threadpool(owners(request).claim, handle.id, principal.id)  # a fresh id: ours
    if body.approve and body.wait:
        outcome: SandboxOutcome = await handle.result()
        return outcome.model_dump(mode="json")
    return {"workflow_id": handle.id, "status_url": f"/v1/sandboxes/{handle.id}"}


@router.get("/v1/sandboxes", responses=_UNAVAILABLE)
async def list_sandboxes(request: Request, gate: GateDep, settings: SettingsDep, principal: ReaderDep,
                         all: bool = False) -> list[dict]:  # noqa: A002
    """Sandbox runs (running ones unless `all=true`), and which wait for a review. Users see the runs they
    started; approvers also those waiting for a review; auditors and operators every run."""
    items = escape_all(await sandbox_client.listing(await gate.client(), settings, running_only=not all))
    if principal.has(*SEE_EVERYTHING):
        return items
    mine = await run_in_threadpool(owners(request).owned_by, principal.id, [i["workflow_id"] for i in items])
    reviewer = principal.has(AccessRole.APPROVER)
    return [i for i in items if i["workflow_id"] in mine or (reviewer and i.get("awaiting_review"))]


@router.get("/v1/sandboxes/{workflow_id}", responses={404: {"model": Problem}, **_UNAVAILABLE})
async def show_sandbox(workflow_id: str, request: Request, gate: GateDep, principal: ReaderDep) -> dict:
    """The review view (code, exit code, stdout, stderr, files) while running; the outcome once closed.
    Scoped like the list: another user's run is a 404. Control characters are shown escaped (`\\x1b[8m` as
    that text)."""
    try:
        shown = escape_all(await sandbox_client.show(await gate.client(), workflow_id))
    except sandbox_client.SandboxError as e:
        raise HTTPException(404, str(e)) from None
    reviewable = principal.has(AccessRole.APPROVER) and shown.get("view") is not None
    if not reviewable and not await may_read(request, principal, shown["workflow_id"]):
        raise HTTPException(404, f"{workflow_id}: no such sandbox run")
    return shown


@router.post("/v1/sandboxes/{workflow_id}/decision", responses={409: {"model": Problem}, **_UNAVAILABLE})
async def decide_sandbox(workflow_id: str, body: DecisionBody, gate: GateDep,
                         principal: ApproverDep) -> dict[str, str]:
    """Approve (deliver the files to downloads/) or reject (discard) a run waiting for review."""
    decision = ReviewDecision(approve=body.approve, by=actor_label(principal), note=body.note, principal=principal)
    try:
        result = await sandbox_client.decide(await gate.client(), workflow_id, decision)
    except sandbox_client.ReviewForbidden as e:
        raise HTTPException(403, str(e)) from None
    except sandbox_client.SandboxError as e:
        raise HTTPException(409, str(e)) from None
    return {"workflow_id": workflow_id, "result": result}
