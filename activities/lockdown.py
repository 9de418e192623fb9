"""Lockdown activities: persist the state the gate reads, verify releases, fan signals out, raise alerts."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from activities.lockdown_store import LockdownStore
from domain.activity_inputs import StatusRequest
from domain.lockdown import (
    CONTROLLER_WORKFLOW,
    PAUSABLE_WORKFLOWS,
    EngageRequest,
    LockdownSignal,
    LockdownState,
    ReleaseCheck,
    controller_id,
)


class LockdownActivities:
    def __init__(self, store: LockdownStore, client: Client, task_queue: str) -> None:
        self.store = store
        self.client = client
        self.task_queue = task_queue

    @activity.defn(name="lockdown.persist")
    def persist(self, state: LockdownState) -> None:
        self.store.write(state)

    @activity.defn(name="lockdown.status")
    def status(self, _: StatusRequest | None = None) -> LockdownState:
        return self.store.read()

    @activity.defn(name="lockdown.verify_release")
    def verify_release(self, check: ReleaseCheck) -> bool:
        return self.store.verify_release(check.token, check.epoch, check.actor)

    @activity.defn(name="lockdown.broadcast")
    async def broadcast(self, signal: LockdownSignal) -> int:
        """Signal every running pausable workflow; returns how many were reached."""
        types = " OR ".join(f"WorkflowType = '{t}'" for t in PAUSABLE_WORKFLOWS)
        query = f"ExecutionStatus = 'Running' AND TaskQueue = '{self.task_queue}' AND ({types})"
        limit = asyncio.Semaphore(64)
        reached = 0

        async def send(workflow_id: str, run_id: str | None) -> None:
            nonlocal reached
            async with limit:
                try:
                    await self.client.get_workflow_handle(workflow_id, run_id=run_id).signal("lockdown", signal)
                    reached += 1
                except RPCError:  # it finished meanwhile
                    pass

        tasks = []
        async for wf in self.client.list_workflows(query):
            tasks.append(asyncio.create_task(send(wf.id, wf.run_id)))
            if len(tasks) % 200 == 0:
                activity.heartbeat(len(tasks))
        await asyncio.gather(*tasks)
        return reached

    @activity.defn(name="lockdown.alert")
    async def alert(self, request: EngageRequest) -> LockdownState:
        """Engage the lockdown from anywhere (a critical guardrail hit, too many permission failures)."""
        return await engage(self.client, self.task_queue, request)


async def engage(client: Client, task_queue: str, request: EngageRequest) -> LockdownState:
    """Engage through the controller (its `engage` update), starting it if needed; returns once the gate is shut."""
    start = WithStartWorkflowOperation(CONTROLLER_WORKFLOW, None, id=controller_id(task_queue), task_queue=task_queue,
                                       id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    return await client.execute_update_with_start_workflow("engage", request, start_workflow_operation=start,
                                                           result_type=LockdownState)
