"""The worker's resource monitor: samples memory and queue depth, and engages the lockdown when exhausted."""

from __future__ import annotations

import asyncio
import logging

import psutil
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from activities.lockdown import engage
from domain.lockdown import EngageRequest, Trigger
from domain.resources import ResourceLimits, ResourceSample, exhaustion

log = logging.getLogger("hybrid_llm.resource_monitor")


class ResourceMonitor:
    def __init__(self, client: Client, namespace: str, task_queue: str, limits: ResourceLimits,
                 every_s: float = 10.0) -> None:
        self.client = client
        self.namespace = namespace
        self.task_queue = task_queue
        self.limits = limits
        self.every_s = every_s

    async def sample(self) -> ResourceSample:
        backlog = None
        try:
            resp = await self.client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
                namespace=self.namespace, task_queue=TaskQueue(name=self.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, report_stats=True))
            if resp.HasField("stats"):
                backlog = int(resp.stats.approximate_backlog_count)
        except RPCError as e:
            log.debug("no backlog figure from the server: %s", e)
        return ResourceSample(memory_percent=psutil.virtual_memory().percent, backlog=backlog)

    async def check_once(self) -> str | None:
        """Sample; when exhausted, engage the lockdown (idempotent while locked). Returns the reason, if any."""
        reason = exhaustion(await self.sample(), self.limits)
        if reason is not None:
            state = await engage(self.client, self.task_queue, EngageRequest(
                reason=reason, trigger=Trigger.RESOURCE_EXHAUSTION, actor="resource-monitor"))
            log.warning("lockdown (epoch %s): %s", state.epoch, reason)
        return reason

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check_once()
            except Exception:  # noqa: BLE001 - the monitor must keep running
                log.exception("resource check failed")
            try:
                await asyncio.wait_for(stop.wait(), self.every_s)
            except asyncio.TimeoutError:
                pass
