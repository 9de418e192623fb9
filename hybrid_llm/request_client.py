"""Starting a RequestWorkflow and following it: shared by the CLI, the API, tests and benchmarks."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from domain.principals import Principal
from domain.requests import Progress, RequestInput, RequestResult, UserRequest, workflow_id_for
from hybrid_llm.settings import Settings
from workflows.request import RequestWorkflow


def new_request_id() -> str:
    return uuid.uuid4().hex


async def start_request(client: Client, settings: Settings, request: UserRequest,
                        principal: Principal | None = None, *, only_new: bool = False) -> WorkflowHandle:
    """Start the request's workflow, or find it: a request id runs once, whether its workflow is running or closed.
    `principal` is who the entry point authenticated; it is sealed into the workflow's input. The policy
    (timeouts, security settings) is the worker's: the client sends none. `only_new`: a workflow that already has
    this id (running or closed) raises WorkflowAlreadyStartedError instead of being found."""
    payload = RequestInput(request=request, principal=principal).model_dump(mode="json")
    workflow_id = workflow_id_for(request.request_id)
    try:
        return await client.start_workflow(
            RequestWorkflow.run, payload, id=workflow_id, task_queue=settings.task_queue, result_type=RequestResult,
            task_timeout=timedelta(seconds=settings.workflow_task_timeout_s),
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL if only_new else WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
    except WorkflowAlreadyStartedError:
        if only_new:
            raise
        return client.get_workflow_handle(workflow_id, result_type=RequestResult)


async def current_progress(handle: WorkflowHandle) -> Progress | None:
    try:
        return await handle.query(RequestWorkflow.progress, result_type=Progress)
    except Exception:  # noqa: BLE001 - progress is best effort (no worker yet, or workflow closed)
        return None


def failure_message(e: WorkflowFailureError) -> tuple[str, str]:
    """(type, message) of the root cause of a failed request, for people and the API."""
    cause: BaseException | None = e.cause
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.type or "ApplicationError", cause.message
        if cause.__cause__ is None:
            break
        cause = cause.__cause__
    return type(cause or e).__name__, str(cause or e)


async def wait_with_progress(handle: WorkflowHandle, on_progress: Callable[[Progress], None],
                             poll_s: float = 0.15) -> RequestResult:
    import asyncio

    result_task = asyncio.ensure_future(handle.result())
    last: Progress | None = None
    while not result_task.done():
        done, _ = await asyncio.wait({result_task}, timeout=poll_s)
        if done:
            break
        progress = await current_progress(handle)
        if progress is not None and progress != last:
            on_progress(progress)
            last = progress
    return result_task.result()
