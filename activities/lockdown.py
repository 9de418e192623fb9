"""Lockdown activities: persist the state the gate reads, verify releases, fan signals out, raise alerts."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.lockdown_store import LockdownStore
from domain.principals import system_principal
from domain.activity_inputs import StatusRequest
from domain.lockdown import (
    CONTROLLER_WORKFLOW,
    PAUSABLE_WORKFLOWS,
    EngageRequest,
    LockdownSignal,
    LockdownState,
    ReleaseCheck,
    ReleaseVerdict,
    Trigger,
    StrikeOutcome,
    StrikeRequest,
    control_queue,
    controller_id,
)


class LockdownActivities:
    def __init__(self, store: LockdownStore, client: Client, task_queue: str, releases_needed: int = 1,
                 strike_threshold: int = 3, strike_window_s: float = 3600.0) -> None:
        self.store = store
        self.client = client
        self.task_queue = task_queue
        self.releases_needed = releases_needed
        self.strike_threshold = strike_threshold
        self.strike_window_s = strike_window_s

    @activity.defn(name="lockdown.persist")
    def persist(self, state: LockdownState) -> None:
        self.store.write(state)

    @activity.defn(name="lockdown.status")
    def status(self, _: StatusRequest | None = None) -> LockdownState:
        return self.store.read()

    @activity.defn(name="lockdown.verify_release")
    def verify_release(self, check: ReleaseCheck) -> bool:
        """The pre-0010 HMAC token, which whoever read the database could mint: kept only so that old histories
        replay (their results are in history); it accepts nothing."""
        return False

    @activity.defn(name="lockdown.check_release")
    def check_release(self, check: ReleaseCheck) -> ReleaseVerdict:
        """Verify a release proof under the principal's own backoff (PostgreSQL); local to the controller."""
        if not activity.info().is_local:
            raise ApplicationError("lockdown.check_release runs only as the controller's local activity",
                                   type="PermissionDenied", non_retryable=True)
        return self.store.verify_release(check, self.releases_needed)

    @activity.defn(name="lockdown.record_strike")
    def record_strike(self, strike: StrikeRequest) -> StrikeOutcome:
        """A critical hit in a principal's own input: count it; past the threshold suspend the principal and alert
        the operators (a `security_alerts` row, shown by `lockdown status`). Never a lockdown."""
        count, suspended = self.store.record_strike(strike.principal_id, activity.info().workflow_id,
                                                    strike.reason, self.strike_threshold, self.strike_window_s)
        return StrikeOutcome(strikes=count, threshold=self.strike_threshold, suspended=suspended)

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
    """Engage through the controller (its `engage` update), starting it if needed; returns once the gate is shut.
    An automatic trigger without a principal is the platform's own: it is stamped as a system principal."""
    if request.principal is None and request.trigger != Trigger.PANIC:
        request = request.model_copy(update={"principal": system_principal((request.actor or "platform")[:150])})
    # On its own queue (a controller started before that lane existed keeps running on the workload's queue).
    start = WithStartWorkflowOperation(CONTROLLER_WORKFLOW, None, id=controller_id(task_queue),
                                       task_queue=control_queue(task_queue),
                                       id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    return await client.execute_update_with_start_workflow("engage", request, start_workflow_operation=start,
                                                           result_type=LockdownState)
