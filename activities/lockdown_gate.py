"""The fail-safe gate: every side effect (LLM call, file write, sandbox run) is admitted through it.

Admission takes the deployment's lockdown lock SHARED, reads the state, and keeps the lock until the caller
has started its side effect. The controller persists an engage under an exclusive lock BEFORE acknowledging it, so the
engage waits for admissions in progress, and once it is acknowledged nothing more is admitted anywhere,
even in a workflow that has not yet seen the lockdown signal. When the state cannot be read, the gate stays
shut (a retryable error): nothing starts unconfirmed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psycopg
import sqlalchemy as sa
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.db import pipelined
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
        # A pooled connection, driven through psycopg directly: this runs before every side effect, so it stays
        # lean. The lock and the read go in one pipeline (one round trip), still two statements (see below).
        conn = None
        try:
            conn = self.store.engine.connect()
            raw = conn.connection.driver_connection
            with pipelined(raw):
                raw.execute(_LOCK_SHARED, {"ns": LOCK_NAMESPACE, "scope": self.store.scope}, prepare=True)
                row = raw.execute(_READ, {"scope": self.store.scope}, prepare=True).fetchone()
        except (sa.exc.SQLAlchemyError, psycopg.Error) as e:
            if conn is not None:
                conn.invalidate()  # never hand a connection in an unknown state back to the pool
                conn.close()
            raise ApplicationError(f"cannot confirm the lockdown state, so {action} does not start: "
                                   f"{type(e).__name__}", type="GateUnavailable") from None
        with conn:
            try:
                if row is not None and row[0]:
                    raise ApplicationError(f"lockdown (epoch {row[1]}): {action} refused: {row[2]}",
                                           row[1], type=LOCKED_DOWN, non_retryable=True,
                                           category=ApplicationErrorCategory.BENIGN)  # expected: logged at DEBUG
                if run is not None:
                    run.admitted_epoch = row[1] if row is not None else 0
                yield
                raw.commit()  # releases the shared lock: the side effect has started
            finally:
                if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    with suppress(psycopg.Error):  # refused, or the block raised: the lock goes now
                        raw.rollback()


# Two statements on purpose: the lock first, then a read with a snapshot taken after the lock was granted (one
# statement would read with the snapshot it took before waiting for the lock: an engage committed meanwhile would
# go unseen). A pipeline sends both at once; the server still runs them one after the other.
_LOCK_SHARED = "SELECT pg_advisory_xact_lock_shared(%(ns)s, hashtext(%(scope)s))"
_READ = "SELECT locked, epoch, reason FROM lockdown_state WHERE scope = %(scope)s"
