"""Sandboxes from the CLI, the API and tests: start a run, list and show them, approve or reject the output."""

from __future__ import annotations

import uuid

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from domain.sandbox import (
    LimitsRefused,
    ReviewDecision,
    ReviewView,
    SandboxInput,
    SandboxOutcome,
    SandboxSpec,
    check_caps,
    sandbox_workflow_id,
)
from domain.principals import FORBIDDEN, Principal
from hybrid_llm.settings import Settings
from workflows.sandbox import SandboxWorkflow


class SandboxError(RuntimeError):
    """Unknown sandbox, or not waiting for a review."""


class ReviewForbidden(SandboxError):
    """This principal may not review this run (not an approver, or the requester of a model's code)."""


__all__ = ["LimitsRefused", "SandboxError", "decide", "listing", "show", "start"]


def new_sandbox_id() -> str:
    return uuid.uuid4().hex[:16]


def sandbox_input(settings: Settings, spec: SandboxSpec, approve: ReviewDecision | None = None,
                  sandbox_id: str | None = None, requester: Principal | None = None) -> SandboxInput:
    return SandboxInput(spec=spec, sandbox_id=sandbox_id or new_sandbox_id(), approve=approve,
                        review_timeout_s=settings.sandbox_review_timeout_s,
                        approval_timeout_s=settings.approval_timeout_s, requester=requester,
                        four_eyes=settings.approvals_four_eyes)


async def start(client: Client, settings: Settings, spec: SandboxSpec, approve: ReviewDecision | None = None,
                sandbox_id: str | None = None, requester: Principal | None = None) -> WorkflowHandle:
    """Raises LimitsRefused when the spec asks for more than the operator's caps (nothing is started). `requester`:
    who the entry point authenticated (sealed into the input; reviews are checked against it)."""
    check_caps(spec.limits, settings.sandbox_caps())
    inp = sandbox_input(settings, spec, approve, sandbox_id, requester)
    return await client.start_workflow(SandboxWorkflow.run, inp, id=sandbox_workflow_id(inp.sandbox_id),
                                       task_queue=settings.task_queue, result_type=SandboxOutcome)


async def listing(client: Client, settings: Settings, running_only: bool = False, limit: int = 50) -> list[dict]:
    query = f"WorkflowType = 'SandboxWorkflow' AND TaskQueue = '{settings.task_queue}'"
    if running_only:
        query += " AND ExecutionStatus = 'Running'"
    found: list[dict] = []
    async for wf in client.list_workflows(query, limit=limit):
        item = {"workflow_id": wf.id, "status": wf.status.name.lower() if wf.status else "unknown",
                "started": wf.start_time.isoformat() if wf.start_time else None,
                "awaiting_review": bool((wf.search_attributes or {}).get("AwaitingApproval", [False])[0])}
        found.append(item)
    return found


async def show(client: Client, workflow_id: str) -> dict:
    """The review view while it runs (code, exit code, stdout, stderr, files), the outcome once it is closed."""
    handle = client.get_workflow_handle(_wid(workflow_id))
    try:
        desc = await handle.describe()
    except RPCError as e:
        raise SandboxError(f"{workflow_id}: {e.message}") from None
    status = desc.status.name.lower() if desc.status else "unknown"
    out: dict = {"workflow_id": handle.id, "status": status}
    if status == "running":
        view = await handle.query(SandboxWorkflow.view, result_type=ReviewView)
        out["view"] = view.model_dump(mode="json") if view else None
    elif status == "completed":
        out["outcome"] = (await handle.result(result_type=SandboxOutcome)).model_dump(mode="json")
    return out


async def decide(client: Client, workflow_id: str, decision: ReviewDecision) -> str:
    try:
        return await client.get_workflow_handle(_wid(workflow_id)).execute_update(SandboxWorkflow.decide, decision)
    except WorkflowUpdateFailedError as e:
        if isinstance(e.cause, ApplicationError) and e.cause.type == FORBIDDEN:
            raise ReviewForbidden(f"{workflow_id}: {e.cause.message}") from None
        raise SandboxError(f"{workflow_id}: {e.cause or e}") from None
    except RPCError as e:
        raise SandboxError(f"{workflow_id}: {e.message}") from None


def _wid(workflow_id: str) -> str:
    """Accept a sandbox id as well as its workflow id."""
    return workflow_id if workflow_id.startswith("sandbox-") else sandbox_workflow_id(workflow_id)
