"""The endpoints: start a request workflow, read its status, list the pool, report health."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.exceptions import TimeoutError
from temporalio.service import RPCError, RPCStatusCode

from domain.llm import PoolCommand
from domain.principals import AccessRole, Principal
from domain.pool import PoolSnapshot
from domain.requests import REQUEST_ID_PATTERN, Progress, RequestResult, workflow_id_for
from hybrid_llm.api.auth import ALL_ROLES, authenticate, require
from hybrid_llm.api.gate import TemporalGate
from hybrid_llm.api.limits import admit, claim, may_read, release
from hybrid_llm.api.schemas import (
    ErrorInfo,
    Health,
    Problem,
    ProgressInfo,
    RequestStatus,
    RequestStatusName,
    SubmitRequest,
    Submitted,
)
from hybrid_llm.request_client import failure_message, start_request
from hybrid_llm.settings import Settings
from hybrid_llm.temporal import TemporalUnavailable
from workflows.pool import PoolWorkflow
from workflows.request import RequestWorkflow

POOL_TIMEOUT = timedelta(seconds=15)
QUERY_TIMEOUT = timedelta(seconds=2)

_STATUS: dict[WorkflowExecutionStatus, RequestStatusName] = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "running",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "canceled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
}
_UNAVAILABLE = {503: {"model": Problem, "description": "Temporal (or the worker) cannot be reached"}}
_AUTH = {401: {"model": Problem, "description": "no valid `Authorization: Bearer <key>`"},
         403: {"model": Problem, "description": "the key lacks the role this needs"}}

# Every route on `router` needs a valid key (plus its own `require(...)`); `public` holds only /healthz.
router = APIRouter(dependencies=[Depends(authenticate)], responses=_AUTH)
public = APIRouter()


# async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request for an attribute read.
async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _gate(request: Request) -> TemporalGate:
    return request.app.state.gate


# Handlers connect inside their body, after FastAPI validated the input: a bad body is a 422 even when
# Temporal is down.
SettingsDep = Annotated[Settings, Depends(_settings)]
GateDep = Annotated[TemporalGate, Depends(_gate)]
UserDep = Annotated[Principal, Depends(require(AccessRole.USER))]
ReaderDep = Annotated[Principal, Depends(require(AccessRole.USER, AccessRole.APPROVER, AccessRole.AUDITOR,
                                                 AccessRole.OPERATOR))]
AnyRoleDep = Annotated[Principal, Depends(require(*ALL_ROLES))]
RequestId = Annotated[str, Path(pattern=REQUEST_ID_PATTERN, description="The id returned by POST /v1/requests.")]


@router.post("/v1/requests", status_code=202, response_model=Submitted,
             responses={403: {"model": Problem}, 409: {"model": Problem}, 422: {"model": Problem},
                        429: {"model": Problem}, **_UNAVAILABLE})
async def submit(body: SubmitRequest, request: Request, response: Response, gate: GateDep,
                 settings: SettingsDep, principal: UserDep) -> Submitted:
    """Start one durable request workflow; poll `status_url` for its state.

    Idempotent on `request_id`: a retried POST with the same id returns the original workflow (running or
    closed) and does not start another, whatever its body says.
    """
    await admit(request, principal, body.model)
    client = await gate.client()
    request_id = body.request_id or uuid.uuid4().hex
    workflow_id = workflow_id_for(request_id)
    if await claim(request, principal, workflow_id, request_id) and body.request_id is not None:
        # A caller-chosen id may name a workflow another entry point started (the local CLI writes no owner row):
        # taking it over would hand that workflow's result to this caller.
        try:
            await client.get_workflow_handle(workflow_id).describe()
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
        else:
            raise await release(request, principal, workflow_id)
    await start_request(client, settings, body.to_user_request(request_id), principal=principal)
    status_url = request.app.url_path_for("get_request", request_id=request_id)
    response.headers["Location"] = status_url
    return Submitted(request_id=request_id, workflow_id=workflow_id, status_url=status_url)


@router.get("/v1/requests/{request_id}", name="get_request", response_model=RequestStatus,
            responses={404: {"model": Problem}, 422: {"model": Problem}, **_UNAVAILABLE})
async def get_request(request_id: RequestId, request: Request, gate: GateDep,
                      principal: ReaderDep) -> RequestStatus:
    """The request's state: its result once completed, its error once failed, its progress while running.
    Users read the requests they started (another's is a 404); auditors and operators read every request."""
    client = await gate.client()
    workflow_id = workflow_id_for(request_id)
    if not await may_read(request, principal, workflow_id):
        raise HTTPException(404, f"no request with id {request_id!r}")
    handle = client.get_workflow_handle_for(RequestWorkflow.run, workflow_id)
    try:
        description = await handle.describe()
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"no request with id {request_id!r}") from None
        raise
    status = _STATUS.get(description.status, "running") if description.status else "running"
    out = RequestStatus(request_id=request_id, workflow_id=workflow_id, status=status)
    if status == "running":
        out.progress = await _progress(handle)
    elif status == "completed":
        out.result = await handle.result()
    else:
        out.error = await _error(handle)
    return out


async def _progress(handle: WorkflowHandle[RequestWorkflow, RequestResult]) -> ProgressInfo | None:
    """Best effort: a query needs a live worker, and a missing progress must not fail the status call."""
    try:
        progress: Progress = await handle.query(RequestWorkflow.progress, rpc_timeout=QUERY_TIMEOUT)
    except (WorkflowQueryFailedError, RPCError):
        return None
    return ProgressInfo(stage=progress.stage, model=progress.model)


async def _error(handle: WorkflowHandle[RequestWorkflow, RequestResult]) -> ErrorInfo:
    try:
        await handle.result()
    except WorkflowFailureError as e:
        kind, message = failure_message(e)
        return ErrorInfo(type=kind, message=message)
    return ErrorInfo(type="Unknown", message="the workflow closed without an error")


@router.get("/v1/pool", response_model=PoolSnapshot, responses=_UNAVAILABLE)
async def pool(gate: GateDep, settings: SettingsDep, principal: AnyRoleDep) -> PoolSnapshot:
    """The worker's model pool: each model's spec, whether it is loaded, healthy or cooling down."""
    client = await gate.client()
    try:
        return await client.execute_workflow(
            PoolWorkflow.run, PoolCommand(action="status"), id=f"pool-status-{uuid.uuid4().hex}",
            task_queue=settings.task_queue, execution_timeout=POOL_TIMEOUT)
    except WorkflowFailureError as e:
        if isinstance(e.cause, TimeoutError):
            raise TemporalUnavailable(
                f"no worker answered on task queue {settings.task_queue!r} within {POOL_TIMEOUT.seconds} s; "
                "start one with `hybrid-llm worker` (or `hybrid-llm up`)") from None
        raise


@public.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(gate: GateDep, response: Response) -> Health:
    """`ok` when Temporal answers a health check; 503 `unreachable` (with the reason) otherwise."""
    try:
        client = await gate.client()
        await client.service_client.check_health(timeout=QUERY_TIMEOUT)
    except TemporalUnavailable as e:
        response.status_code = 503
        return Health(temporal="unreachable", message=str(e))
    except RPCError as e:
        response.status_code = 503
        return Health(temporal="unreachable", message=str(gate.unavailable(e.message)))
    return Health(temporal="ok")
