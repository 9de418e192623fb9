"""Runtime permission requests and their approvals, from the CLI, the API and tests."""

from __future__ import annotations

import uuid

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from domain.approvals import ApprovalVerdict, PendingApproval, PermissionInput, PermissionOutcome
from domain.permissions import PermissionRequest
from domain.principals import FORBIDDEN
from hybrid_llm.settings import Settings
from workflows.permission import PermissionWorkflow


class ApprovalError(RuntimeError):
    """The approval could not be given (unknown request, or not waiting for one)."""


class ApprovalForbidden(ApprovalError):
    """This principal may not decide this request (not an approver, or the requester: four eyes)."""


def permission_input(settings: Settings, request: PermissionRequest, content: str | None = None) -> PermissionInput:
    return PermissionInput(request=request, content=content, approval_timeout_s=settings.approval_timeout_s,
                           failure_threshold=settings.permission_failure_threshold,
                           failure_window_s=settings.permission_failure_window_s)


async def request_permission(client: Client, settings: Settings, request: PermissionRequest,
                             content: str | None = None, workflow_id: str | None = None) -> WorkflowHandle:
    return await client.start_workflow(
        PermissionWorkflow.run, permission_input(settings, request, content),
        id=workflow_id or f"permission-{uuid.uuid4().hex}", task_queue=settings.task_queue,
        result_type=PermissionOutcome)


async def pending(client: Client, settings: Settings) -> list[PendingApproval]:
    query = (f"WorkflowType = 'PermissionWorkflow' AND ExecutionStatus = 'Running' AND AwaitingApproval = true "
             f"AND TaskQueue = '{settings.task_queue}'")
    found: list[PendingApproval] = []
    async for wf in client.list_workflows(query):
        try:
            item = await client.get_workflow_handle(wf.id).query(PermissionWorkflow.pending,
                                                                 result_type=PendingApproval)
        except RPCError:
            continue  # decided meanwhile
        if item is not None:
            found.append(item)
    return found


async def decide(client: Client, workflow_id: str, verdict: ApprovalVerdict) -> str:
    try:
        return await client.get_workflow_handle(workflow_id).execute_update(PermissionWorkflow.decide, verdict)
    except WorkflowUpdateFailedError as e:
        if isinstance(e.cause, ApplicationError) and e.cause.type == FORBIDDEN:
            raise ApprovalForbidden(f"{workflow_id}: {e.cause.message}") from None
        raise ApprovalError(f"{workflow_id}: {e.cause or e}") from None
    except RPCError as e:
        raise ApprovalError(f"{workflow_id}: {e.message}") from None
