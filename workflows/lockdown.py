"""LockdownWorkflow: the singleton that holds the lockdown state (id `lockdown-<task queue>`).

engage (update): a person's engage needs the `operator` role, an automatic trigger comes from the platform itself;
persist the locked state (the gate shuts, and every worker's watcher stops running side effects), then
acknowledge, then signal every running workflow to re-read the state. release (update): an operator's principal
and a release proof (an Ed25519 signature made with the secret, checked by the worker against the stored public
key; never the secret itself); with `lockdown_release_operators = 2`, two different operators. Wrong secrets are
recorded per principal in PostgreSQL and each one doubles that principal's wait before its next try.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.lockdown import LockdownActivities  # the controller's own local activities (release proofs)
    from domain.activity_inputs import StatusRequest
    from workflows import activity_stubs as act
    from domain.lockdown import (
        CONTROLLER_WORKFLOW,
        EngageRequest,
        LockdownSignal,
        LockdownState,
        ReleaseCheck,
        ReleaseRequest,
        engage_refusal,
        release_backoff_s,
        release_refusal,
    )
    from workflows.search_attributes import LOCKED, LOCK_REASON

# Local activities: they run in the worker holding the workflow task, never queued behind the workload's
# activities (an engage must not wait for a hundred LLM calls to drain).
_PERSIST = dict(start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5)))
# Histories recorded before this patch took a free-text actor and an HMAC token; they replay that way.
PRINCIPALS_PATCH = "lockdown-principals"


def _denied(why: str) -> ApplicationError:
    return ApplicationError(why, type="PermissionDenied", non_retryable=True)


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
            checked = workflow.patched(PRINCIPALS_PATCH)
            if checked and (why := engage_refusal(request)):
                raise _denied(why)
            if self.state.locked:
                return self.state  # already locked: the first reason stands
            who = request.principal
            locked = LockdownState(locked=True, epoch=self.state.epoch + 1, reason=request.reason,
                                   trigger=request.trigger,
                                   actor=who.label if who and who.kind != "system" else request.actor,
                                   changed_at=workflow.now(), principal_id=who.id if who else None)
            await workflow.execute_local_activity_method(LockdownActivities.persist, locked, **_PERSIST)
            self._apply(locked)
            return locked

    @workflow.update(name="release")
    async def release(self, request: ReleaseRequest) -> LockdownState:
        await workflow.wait_condition(lambda: self._ready)
        async with self._serial:
            if not workflow.patched(PRINCIPALS_PATCH):
                return await self._release_v1(request)
            if why := release_refusal(request):
                raise _denied(why)
            if not self.state.locked:
                raise ApplicationError("the platform is not locked", type="NotLocked", non_retryable=True)
            if request.epoch != self.state.epoch:
                raise ApplicationError(f"stale release for epoch {request.epoch}; current is {self.state.epoch}",
                                       type="StaleRelease", non_retryable=True)
            who = request.principal
            assert who is not None
            verdict = await workflow.execute_local_activity_method(
                LockdownActivities.check_release, ReleaseCheck(token=request.token, epoch=request.epoch,
                                                               actor=who.label, principal_id=who.id), **_PERSIST)
            if verdict.wait_s > 0:
                raise ApplicationError(f"too many wrong secrets from {who.id}: try again in {verdict.wait_s:.0f}s",
                                       type="SlowDown", non_retryable=True)
            if not verdict.ok:
                self.state = self.state.model_copy(
                    update={"failed_release_attempts": self.state.failed_release_attempts + 1})
                raise ApplicationError(verdict.reason or (
                    f"wrong lockdown secret (attempt {verdict.failed_attempts} by {who.id}; next try allowed in "
                    f"{release_backoff_s(verdict.failed_attempts):.0f}s)"), type="WrongSecret", non_retryable=True)
            approvals = sorted({*self.state.release_approvals, who.id})
            if len(approvals) < verdict.releases_needed:
                # Four eyes: this operator's proof counts; another operator must present theirs.
                self.state = self.state.model_copy(update={"release_approvals": approvals,
                                                           "releases_needed": verdict.releases_needed})
                return self.state
            unlocked = LockdownState(locked=False, epoch=self.state.epoch + 1, reason=f"released: {self.state.reason}",
                                     trigger=self.state.trigger, actor=who.label, changed_at=workflow.now(),
                                     principal_id=who.id, release_approvals=approvals,
                                     releases_needed=verdict.releases_needed)
            await workflow.execute_local_activity_method(LockdownActivities.persist, unlocked, **_PERSIST)
            self._apply(unlocked)
            return unlocked

    async def _release_v1(self, request: ReleaseRequest) -> LockdownState:
        """Before PRINCIPALS_PATCH (replay only): one global backoff, an HMAC token."""
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
        ok = await workflow.execute_local_activity_method(
            LockdownActivities.verify_release, ReleaseCheck(token=request.token, epoch=request.epoch,
                                                            actor=request.actor), **_PERSIST)
        if not ok:
            failed = self.state.failed_release_attempts + 1
            self.state = self.state.model_copy(update={"failed_release_attempts": failed})
            self._next_release_at = now + timedelta(seconds=release_backoff_s(failed))
            raise ApplicationError(f"wrong lockdown secret (attempt {failed}; next try allowed in "
                                   f"{release_backoff_s(failed):.0f}s)", type="WrongSecret", non_retryable=True)
        unlocked = LockdownState(locked=False, epoch=self.state.epoch + 1, reason=f"released: {self.state.reason}",
                                 trigger=self.state.trigger, actor=request.actor, changed_at=now)
        await workflow.execute_local_activity_method(LockdownActivities.persist, unlocked, **_PERSIST)
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
