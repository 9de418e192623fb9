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
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.interrupts import Interrupts, Running
from activities.lockdown_store import LOCK_NAMESPACE, LockdownStore
from domain.lockdown import LOCKED_DOWN

__all__ = ["LOCKED_DOWN", "LockdownGate"]


class LockdownGate:
    def __init__(self, store: LockdownStore) -> None:
        self.store = store
        # The side effects running in this worker, stopped by a lockdown (activities/interrupts.py).
        self.interrupts = Interrupts(store)

    @contextmanager
    def admit(self, action: str, run: Running | None = None) -> Iterator[None]:
        """Start the side effect inside this block; it is refused (LockedDown) while the platform is locked.
        `run` (registered with `self.interrupts`) records the epoch it was admitted under: a later lockdown
        interrupts it."""
        # SQLAlchemy Core on a pooled connection: this runs before every side effect, so it stays lean.
        conn = None
        try:
            conn = self.store.engine.connect()
            conn.execute(_LOCK_SHARED, {"ns": LOCK_NAMESPACE, "scope": self.store.scope})
            row = conn.execute(_READ, {"scope": self.store.scope}).first()
        except sa.exc.SQLAlchemyError as e:
            if conn is not None:
                conn.close()
            raise ApplicationError(f"cannot confirm the lockdown state, so {action} does not start: "
                                   f"{type(e).__name__}", type="GateUnavailable") from None
        with conn:
            if row is not None and row.locked:
                raise ApplicationError(f"lockdown (epoch {row.epoch}): {action} refused: {row.reason}",
                                       row.epoch, type=LOCKED_DOWN, non_retryable=True,
                                       category=ApplicationErrorCategory.BENIGN)  # expected: logged at DEBUG
            if run is not None:
                run.admitted_epoch = row.epoch if row is not None else 0
            yield
            conn.commit()  # releases the shared lock: the side effect has started


# Two statements on purpose: the lock first, then a read with a snapshot taken after the lock was granted.
_LOCK_SHARED = sa.text("SELECT pg_advisory_xact_lock_shared(:ns, hashtext(:scope))")
_READ = sa.text("SELECT locked, epoch, reason FROM lockdown_state WHERE scope = :scope")
