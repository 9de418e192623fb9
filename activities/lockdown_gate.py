"""The fail-safe gate: every side effect (LLM call, file write, sandbox run) passes it first.

It reads the lockdown state that the controller persists BEFORE acknowledging an engage, so once an engage
is acknowledged no side effect starts anywhere, even in a workflow that has not yet seen the signal.
When the state cannot be read, the gate stays shut (a retryable error): nothing starts unconfirmed.
"""

from __future__ import annotations

import sqlalchemy as sa
from temporalio.exceptions import ApplicationError

from activities.lockdown_store import LockdownStore

LOCKED_DOWN = "LockedDown"


class LockdownGate:
    def __init__(self, store: LockdownStore) -> None:
        self.store = store

    def check(self, action: str) -> None:
        try:
            state = self.store.read()
        except sa.exc.SQLAlchemyError as e:
            raise ApplicationError(f"cannot confirm the lockdown state, so {action} does not start: "
                                   f"{type(e).__name__}", type="GateUnavailable") from None
        if state.locked:
            raise ApplicationError(f"lockdown (epoch {state.epoch}): {action} refused: {state.reason}",
                                   state.epoch, type=LOCKED_DOWN, non_retryable=True)
