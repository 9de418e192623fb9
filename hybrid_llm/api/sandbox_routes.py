"""Sandbox endpoints: start a run, list and show runs, approve or reject their output."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from domain.sandbox import Backend, Language, Limits, Origin, ReviewDecision, SandboxOutcome, SandboxSpec
from hybrid_llm import sandbox_client
from hybrid_llm.api.routes import _UNAVAILABLE, GateDep, SettingsDep
from hybrid_llm.api.schemas import Problem

router = APIRouter(tags=["sandboxes"])


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
    by: str = Field(default="api", min_length=1, max_length=196)  # recorded as "api:<by>" (200 at most)


class DecisionBody(BaseModel):
    model_config = {"extra": "forbid"}
    approve: bool
    note: str = Field(default="", max_length=2000)
    by: str = Field(default="api", min_length=1, max_length=196)  # recorded as "api:<by>" (200 at most)


@router.post("/v1/sandboxes", status_code=202, responses={422: {"model": Problem}, **_UNAVAILABLE})
async def start_sandbox(body: ExecBody, gate: GateDep, settings: SettingsDep) -> dict:
    """Start a sandbox run; **202** `{"workflow_id", "status_url"}`, or the outcome with `approve` + `wait`."""
    try:
        spec = SandboxSpec(command=tuple(body.command), code=body.code, language=body.language, files=body.files,
                           backend=body.backend, limits=body.limits, network_hosts=tuple(body.network_hosts),
                           origin=Origin(actor="user", name=f"api:{body.by}"))
    except ValueError as e:
        raise HTTPException(422, f"invalid sandbox request: {e}") from None
    decision = ReviewDecision(approve=True, by=f"api:{body.by}", note="approved up front") if body.approve else None
    handle = await sandbox_client.start(await gate.client(), settings, spec, decision)
    if body.approve and body.wait:
        outcome: SandboxOutcome = await handle.result()
        return outcome.model_dump(mode="json")
    return {"workflow_id": handle.id, "status_url": f"/v1/sandboxes/{handle.id}"}


@router.get("/v1/sandboxes", responses=_UNAVAILABLE)
async def list_sandboxes(gate: GateDep, settings: SettingsDep, all: bool = False) -> list[dict]:  # noqa: A002
    """Sandbox runs (running ones unless `all=true`), and which wait for a review."""
    return await sandbox_client.listing(await gate.client(), settings, running_only=not all)


@router.get("/v1/sandboxes/{workflow_id}", responses={404: {"model": Problem}, **_UNAVAILABLE})
async def show_sandbox(workflow_id: str, gate: GateDep) -> dict:
    """The review view (code, exit code, stdout, stderr, files) while running; the outcome once closed."""
    try:
        return await sandbox_client.show(await gate.client(), workflow_id)
    except sandbox_client.SandboxError as e:
        raise HTTPException(404, str(e)) from None


@router.post("/v1/sandboxes/{workflow_id}/decision", responses={409: {"model": Problem}, **_UNAVAILABLE})
async def decide_sandbox(workflow_id: str, body: DecisionBody, gate: GateDep) -> dict[str, str]:
    """Approve (deliver the files to downloads/) or reject (discard) a run waiting for review."""
    decision = ReviewDecision(approve=body.approve, by=f"api:{body.by}", note=body.note)
    try:
        result = await sandbox_client.decide(await gate.client(), workflow_id, decision)
    except sandbox_client.SandboxError as e:
        raise HTTPException(409, str(e)) from None
    return {"workflow_id": workflow_id, "result": result}
