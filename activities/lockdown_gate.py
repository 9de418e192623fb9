"""The fail-safe gate: every side effect (LLM call, file write, sandbox run) is admitted through it.

Admission takes the deployment's lockdown lock SHARED, reads the state, and keeps the lock until the caller
has started its side effect. The controller persists an engage under an exclusive lock BEFORE acknowledging it, so the
engage waits for admissions in progress, and once it is acknowledged nothing more is admitted anywhere,
even in a workflow that has not yet seen the lockdown signal. When the state cannot be read, the gate stays
shut (a retryable error): nothing starts unconfirmed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.orm import Session
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.lockdown_store import LockdownStore

LOCKED_DOWN = "LockedDown"


class LockdownGate:
    def __init__(self, store: LockdownStore) -> None:
        self.store = store

    @contextmanager
    def admit(self, action: str) -> Iterator[None]:
        """Start the side effect inside this block; it is refused (LockedDown) while the platform is locked."""
        session = Session(self.store.engine)
        try:
            try:
                session.begin()
                self.store.lock(session, exclusive=False)
                state = self.store.read(session)
            except sa.exc.SQLAlchemyError as e:
                raise ApplicationError(f"cannot confirm the lockdown state, so {action} does not start: "
                                       f"{type(e).__name__}", type="GateUnavailable") from None
            if state.locked:
                raise ApplicationError(f"lockdown (epoch {state.epoch}): {action} refused: {state.reason}",
                                       state.epoch, type=LOCKED_DOWN, non_retryable=True,
                                   category=ApplicationErrorCategory.BENIGN)  # expected: logged at DEBUG
            yield
            session.commit()
        finally:
            session.close()
