"""How every entry point (worker, CLI, API, tests) talks to Temporal: same converter, same workflows."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig

from hybrid_llm.settings import Settings
from workflows import search_attributes
from workflows.delegation import DelegationWorkflow
from workflows.ingest import IngestWorkflow
from workflows.lockdown import LockdownWorkflow
from workflows.permission import PermissionWorkflow
from workflows.pool import PoolWorkflow
from workflows.request import RequestWorkflow
from workflows.sandbox import SandboxWorkflow
from workflows.search import SearchWorkflow

DATA_CONVERTER = pydantic_data_converter
WORKFLOWS = [RequestWorkflow, PoolWorkflow, LockdownWorkflow, PermissionWorkflow, DelegationWorkflow,
             IngestWorkflow, SearchWorkflow, SandboxWorkflow]


class TemporalUnavailable(RuntimeError):
    """Temporal cannot be reached; the message says what to do."""


async def connect(settings: Settings, timeout_s: float = 5.0, runtime: Runtime | None = None) -> Client:
    target = settings.temporal_target
    try:
        return await asyncio.wait_for(
            Client.connect(target, namespace=settings.temporal_namespace, data_converter=DATA_CONVERTER,
                           retry_config=RetryConfig(max_retries=2), connect_timeout=timedelta(seconds=timeout_s),
                           runtime=runtime),
            timeout_s + 1)
    except (RuntimeError, asyncio.TimeoutError, OSError) as e:
        hint = ("run `hybrid-llm up` to start the embedded stack" if settings.embedded_temporal
                else "check HYBRID_TEMPORAL_ADDRESS and that the server is running")
        raise TemporalUnavailable(f"cannot reach Temporal at {target}: {e}; {hint}") from None


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register our search attributes (idempotent; works on the dev server and a real cluster)."""
    svc = client.operator_service
    existing = await svc.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    missing = {k.name: IndexedValueType.ValueType(int(k.indexed_value_type)) for k in search_attributes.ALL
               if k.name not in existing.custom_attributes}
    if missing:
        await svc.add_search_attributes(AddSearchAttributesRequest(namespace=namespace, search_attributes=missing))


async def has_workers(client: Client, namespace: str, task_queue: str) -> bool:
    """Whether any worker polled the task queue recently (Temporal keeps pollers for ~1 minute)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    resp = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=namespace, task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
    return len(resp.pollers) > 0
