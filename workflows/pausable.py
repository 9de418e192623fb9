"""Lockdown-aware workflow base: pause at the next step when locked, resume exactly there on release.

A workflow learns of a lockdown in three ways: the controller's `lockdown` signal, a side-effect activity refused
by the gate (error type LockedDown) because it had not paused yet, or a side effect stopped mid-way by the
worker's lockdown watcher (error type InterruptedByLockdown). None of them is trusted for the state itself: the
workflow then re-reads the lockdown state that the gate reads (local activity `lockdown.status`). A signal, which
anyone who reaches Temporal could forge, can only prompt that re-read: a forged epoch neither pauses nor resumes
anything, and later lockdowns still apply. The step is not lost: the workflow waits, then runs it again
(an interrupted LLM call runs again after release: at least once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.activity_inputs import StatusRequest
    from domain.lockdown import INTERRUPTED, LOCKED_DOWN, LockdownSignal
    from workflows import activity_stubs as act
    from workflows.search_attributes import LOCKED

T = TypeVar("T")
# Histories recorded before this patch adopted the signal's epoch; they replay that way.
REREAD_PATCH = "lockdown-reread-state"


def locked_down_epoch(e: ActivityError) -> int | None:
    """The epoch of the lockdown that refused this activity, or None for any other failure."""
    cause = e.cause
    if isinstance(cause, ApplicationError) and cause.type == LOCKED_DOWN:
        return int(cause.details[0]) if cause.details else 0
    return None


def interrupted_epoch(e: ActivityError) -> int | None:
    """The epoch of the lockdown that stopped this activity while it ran, or None for any other failure."""
    cause = e.cause
    if isinstance(cause, ApplicationError) and cause.type == INTERRUPTED:
        return int(cause.details[0]) if cause.details else 0
    return None


class Pausable:
    # How often a paused workflow re-reads the state, in case it missed the release signal.
    lockdown_poll = timedelta(seconds=30)

    def __init__(self) -> None:
        self._lockdown = LockdownSignal(locked=False, epoch=0)
        self._prompted = False  # a signal (or a refused/interrupted step) asked for a re-read of the state
        self._reread: bool | None = None

    def _rereads(self) -> bool:
        if self._reread is None:
            self._reread = workflow.patched(REREAD_PATCH)
        return self._reread

    @workflow.signal(name="lockdown")
    def on_lockdown(self, signal: LockdownSignal) -> None:
        if self._rereads():
            self._prompted = True  # only a prompt: the state comes from the store
        elif signal.epoch > self._lockdown.epoch:
            self._lockdown = signal

    @property
    def paused(self) -> bool:
        return self._lockdown.locked

    async def _refresh(self) -> None:
        self._prompted = False
        state = await act.lockdown_status(StatusRequest())
        self._lockdown = LockdownSignal(locked=state.locked, epoch=state.epoch, reason=state.reason)

    async def checkpoint(self) -> None:
        """Wait here while the platform is locked."""
        if not self._prompted and not self._lockdown.locked:
            return  # the common path: nothing happened (and no patch marker in history)
        if not self._rereads():
            return await self._checkpoint_v1()
        if self._prompted:
            await self._refresh()
        if not self._lockdown.locked:
            return
        workflow.upsert_search_attributes([LOCKED.value_set(True)])
        while self._lockdown.locked:
            try:
                await workflow.wait_condition(lambda: self._prompted, timeout=self.lockdown_poll)
            except asyncio.TimeoutError:
                pass
            await self._refresh()
        workflow.upsert_search_attributes([LOCKED.value_set(False)])

    async def _checkpoint_v1(self) -> None:
        """Before REREAD_PATCH (replay only): trusted the signal's state."""
        workflow.upsert_search_attributes([LOCKED.value_set(True)])
        while self._lockdown.locked:
            try:
                await workflow.wait_condition(lambda: not self._lockdown.locked, timeout=self.lockdown_poll)
            except asyncio.TimeoutError:
                state = await act.lockdown_status(StatusRequest())
                self.on_lockdown(LockdownSignal(locked=state.locked, epoch=state.epoch, reason=state.reason))
        workflow.upsert_search_attributes([LOCKED.value_set(False)])

    async def guarded(self, step: Callable[[], Awaitable[T]], rerun_interrupted: bool = True) -> T:
        """Run a side-effect step; if the gate refuses it for a lockdown (or, with `rerun_interrupted`, a lockdown
        stopped it mid-way), pause and run it again after release. An interrupted step with
        `rerun_interrupted=False` raises its ActivityError (see `interrupted_epoch`): the caller decides."""
        while True:
            await self.checkpoint()
            try:
                return await step()
            except ActivityError as e:
                refused = locked_down_epoch(e)
                stopped = rerun_interrupted and interrupted_epoch(e) is not None
                if refused is None and not stopped:
                    raise
                if self._rereads():
                    self._prompted = True  # our own activity said so: re-read, then wait or run again
                else:
                    self.on_lockdown(LockdownSignal(locked=True, epoch=refused or 0,
                                                    reason="refused by the lockdown gate"))
