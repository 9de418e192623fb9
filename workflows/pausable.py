"""Lockdown-aware workflow base: pause at the next step when locked, resume exactly there on release.

Two ways a workflow learns of a lockdown: the controller's `lockdown` signal, or a side-effect activity
refused by the gate (error type LockedDown carrying the epoch) because the signal has not arrived yet.
Either way the step is not lost: the workflow waits, then runs the same step again.
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
    from domain.lockdown import LOCKED_DOWN, LockdownSignal
    from workflows import activity_stubs as act
    from workflows.search_attributes import LOCKED

T = TypeVar("T")


def locked_down_epoch(e: ActivityError) -> int | None:
    """The epoch of the lockdown that refused this activity, or None for any other failure."""
    cause = e.cause
    if isinstance(cause, ApplicationError) and cause.type == LOCKED_DOWN:
        return int(cause.details[0]) if cause.details else 0
    return None


class Pausable:
    # How often a paused workflow re-reads the state, in case it missed the release signal.
    lockdown_poll = timedelta(seconds=30)

    def __init__(self) -> None:
        self._lockdown = LockdownSignal(locked=False, epoch=0)

    @workflow.signal(name="lockdown")
    def on_lockdown(self, signal: LockdownSignal) -> None:
        if signal.epoch > self._lockdown.epoch:
            self._lockdown = signal

    @property
    def paused(self) -> bool:
        return self._lockdown.locked

    async def checkpoint(self) -> None:
        """Wait here while the platform is locked."""
        if not self._lockdown.locked:
            return
        workflow.upsert_search_attributes([LOCKED.value_set(True)])
        while self._lockdown.locked:
            try:
                await workflow.wait_condition(lambda: not self._lockdown.locked, timeout=self.lockdown_poll)
            except asyncio.TimeoutError:
                state = await act.lockdown_status(StatusRequest())
                self.on_lockdown(LockdownSignal(locked=state.locked, epoch=state.epoch, reason=state.reason))
        workflow.upsert_search_attributes([LOCKED.value_set(False)])

    async def guarded(self, step: Callable[[], Awaitable[T]]) -> T:
        """Run a side-effect step; if the gate refuses it for a lockdown, pause and run it again after release."""
        while True:
            await self.checkpoint()
            try:
                return await step()
            except ActivityError as e:
                epoch = locked_down_epoch(e)
                if epoch is None:
                    raise
                self.on_lockdown(LockdownSignal(locked=True, epoch=epoch, reason="refused by the lockdown gate"))
