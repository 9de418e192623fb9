"""LockdownWorkflow: the singleton that holds the lockdown state (id `lockdown-controller`).

engage (update): persist the locked state (the gate shuts), then acknowledge, then signal every running
workflow to pause. release (update): verify the release token (never the secret itself), persist the unlocked
state, signal everyone to resume. Wrong secrets are recorded and each one doubles the wait before the next try.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.activity_inputs import StatusRequest
    from workflows import activity_stubs as act
    from domain.lockdown import (
        CONTROLLER_WORKFLOW,
        EngageRequest,
        LockdownSignal,
        LockdownState,
        ReleaseCheck,
        ReleaseRequest,
        release_backoff_s,
    )
    from workflows.search_attributes import LOCKED, LOCK_REASON

# Local activities: they run in the worker holding the workflow task, never queued behind the workload's
# activities (an engage must not wait for a hundred LLM calls to drain).
_PERSIST = dict(start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5)))


@workflow.defn(name=CONTROLLER_WORKFLOW)
class LockdownWorkflow:
    def __init__(self) -> None:
        self.state = LockdownState()
        self._ready = False
        self._serial = asyncio.Lock()
        self._next_release_at = None
        self._broadcasts: list[asyncio.Task] = []

    @workflow.run
    async def run(self, carried: LockdownState | None = None) -> None:
        # A new controller adopts what the gate last saw, so a restart never silently unlocks.
        self.state = carried or await act.lockdown_status(StatusRequest(), **_PERSIST)
        self._sync_search_attributes()
        self._ready = True
        await workflow.wait_condition(lambda: workflow.info().is_continue_as_new_suggested()
                                      and workflow.all_handlers_finished() and not self._pending())
        workflow.continue_as_new(self.state)

    @workflow.query(name="state")
    def get_state(self) -> LockdownState:
        return self.state

    @workflow.update(name="engage")
    async def engage(self, request: EngageRequest) -> LockdownState:
        await workflow.wait_condition(lambda: self._ready)
        async with self._serial:
            if self.state.locked:
                return self.state  # already locked: the first reason stands
            locked = LockdownState(locked=True, epoch=self.state.epoch + 1, reason=request.reason,
                                   trigger=request.trigger, actor=request.actor, changed_at=workflow.now())
            await act.lockdown_persist(locked, **_PERSIST)
            self._apply(locked)
            return locked

    @workflow.update(name="release")
    async def release(self, request: ReleaseRequest) -> LockdownState:
        await workflow.wait_condition(lambda: self._ready)
        async with self._serial:
            if not self.state.locked:
                raise ApplicationError("the platform is not locked", type="NotLocked", non_retryable=True)
            if request.epoch != self.state.epoch:
                raise ApplicationError(f"stale release for epoch {request.epoch}; current is {self.state.epoch}",
                                       type="StaleRelease", non_retryable=True)
            now = workflow.now()
            if self._next_release_at is not None and now < self._next_release_at:
                wait = (self._next_release_at - now).total_seconds()
                raise ApplicationError(f"too many wrong secrets: try again in {wait:.0f}s", type="SlowDown",
                                       non_retryable=True)
            ok = await act.lockdown_verify_release(ReleaseCheck(token=request.token, epoch=request.epoch,
                                                                actor=request.actor), **_PERSIST)
            if not ok:
                failed = self.state.failed_release_attempts + 1
                self.state = self.state.model_copy(update={"failed_release_attempts": failed})
                self._next_release_at = now + timedelta(seconds=release_backoff_s(failed))
                raise ApplicationError(f"wrong lockdown secret (attempt {failed}; next try allowed in "
                                       f"{release_backoff_s(failed):.0f}s)", type="WrongSecret", non_retryable=True)
            unlocked = LockdownState(locked=False, epoch=self.state.epoch + 1, reason=f"released: {self.state.reason}",
                                     trigger=self.state.trigger, actor=request.actor, changed_at=now)
            await act.lockdown_persist(unlocked, **_PERSIST)
            self._next_release_at = None
            self._apply(unlocked)
            return unlocked

    def _apply(self, state: LockdownState) -> None:
        self.state = state
        self._sync_search_attributes()
        signal = LockdownSignal(locked=state.locked, epoch=state.epoch, reason=state.reason)
        self._broadcasts.append(asyncio.create_task(self._broadcast(signal)))

    async def _broadcast(self, signal: LockdownSignal) -> None:
        await act.lockdown_broadcast(signal, start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(seconds=30), retry_policy=RetryPolicy(maximum_attempts=5))

    def _pending(self) -> bool:
        return any(not t.done() for t in self._broadcasts)

    def _sync_search_attributes(self) -> None:
        workflow.upsert_search_attributes([LOCKED.value_set(self.state.locked),
                                           LOCK_REASON.value_set(self.state.reason or "")])
