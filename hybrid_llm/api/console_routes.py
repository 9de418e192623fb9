"""The web console (plain HTML + one JS file, served from the package; nothing to build) and the two reads it
needs beyond the existing endpoints: the live list of requests and a request's audit timeline."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from domain.requests import Progress, workflow_id_for
from hybrid_llm.api.auth import authenticate
from hybrid_llm.api.limits import SEE_EVERYTHING, may_read, owners
from hybrid_llm.api.routes import _AUTH, _UNAVAILABLE, AnyRoleDep, GateDep, ReaderDep, RequestId, SettingsDep
from hybrid_llm.audit import timeline
from workflows.request import RequestWorkflow

STATIC = Path(__file__).with_name("console")
QUERY_TIMEOUT = timedelta(seconds=2)

router = APIRouter(tags=["console"], dependencies=[Depends(authenticate)], responses=_AUTH)
pages = APIRouter(include_in_schema=False)


@pages.get("/console")
async def console_page() -> FileResponse:
    """The console's page. It holds no data: it signs in with a key and calls the API with it."""
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=_NO_STORE)


@pages.get("/console/{name}")
async def console_asset(name: str) -> FileResponse:
    if name not in _ASSETS:
        raise HTTPException(404, "no such file")
    return FileResponse(STATIC / name, media_type=_ASSETS[name], headers=_NO_STORE)


_ASSETS = {"console.js": "text/javascript", "console.css": "text/css"}
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
             "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                                        "img-src 'self'; connect-src 'self'; frame-ancestors 'none'"}


@router.get("/v1/console/config", responses=_UNAVAILABLE)
async def console_config(settings: SettingsDep, principal: AnyRoleDep) -> dict:
    """Where the Temporal Web UI is (for links to raw histories), and the namespace."""
    return {"temporal_ui_url": settings.temporal_ui_url, "namespace": settings.temporal_namespace,
            "task_queue": settings.task_queue}


@router.get("/v1/console/whoami")
async def whoami(principal: AnyRoleDep) -> dict:
    """Who the console is signed in as."""
    return {"id": principal.id, "name": principal.name, "roles": [r.value for r in principal.roles]}


@router.get("/v1/console/requests", responses=_UNAVAILABLE)
async def recent_requests(request: Request, gate: GateDep, settings: SettingsDep, principal: ReaderDep,
                          limit: int = 30) -> list[dict]:
    """The latest requests, newest first, each with its status and, while it runs, its stage. Users see the
    requests they started; auditors and operators every request."""
    client = await gate.client()
    query = f"WorkflowType = 'RequestWorkflow' AND TaskQueue = '{settings.task_queue}'"
    found = [wf async for wf in client.list_workflows(query, limit=max(1, min(limit, 100)))]
    if not principal.has(*SEE_EVERYTHING):
        mine = await run_in_threadpool(owners(request).owned_by, principal.id, [wf.id for wf in found])
        found = [wf for wf in found if wf.id in mine]

    async def stage(wf) -> dict:
        item = {"request_id": wf.id.removeprefix("request-"), "workflow_id": wf.id,
                "status": wf.status.name.lower() if wf.status else "unknown",
                "started": wf.start_time.isoformat() if wf.start_time else None,
                "model": (wf.search_attributes or {}).get("Model", [None])[0], "stage": None}
        if wf.status == WorkflowExecutionStatus.RUNNING:
            try:
                progress = await client.get_workflow_handle(wf.id).query(
                    RequestWorkflow.progress, result_type=Progress, rpc_timeout=QUERY_TIMEOUT)
                item["stage"], item["model"] = progress.stage, progress.model or item["model"]
            except (RPCError, Exception):  # noqa: BLE001 - the stage is best effort (no worker yet)
                pass
        return item

    return list(await asyncio.gather(*(stage(wf) for wf in found)))


@router.get("/v1/requests/{request_id}/timeline", responses={404: {}, **_UNAVAILABLE})
async def request_timeline(request_id: RequestId, request: Request, gate: GateDep, principal: ReaderDep) -> dict:
    """The request's audit timeline, built from its event history (children included)."""
    if not await may_read(request, principal, workflow_id_for(request_id)):
        raise HTTPException(404, f"no request with id {request_id!r}")
    client = await gate.client()
    try:
        return await timeline.show(client, workflow_id_for(request_id))
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"no request with id {request_id!r}") from None
        raise
