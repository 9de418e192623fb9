"""Lockdown state, release secret and release attempts in PostgreSQL (shared by every worker)."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from activities.db.models import LockdownSecretRow, LockdownStateRow, ReleaseAttemptRow
from domain.lockdown import MIN_SECRET_CHARS, LockdownState, SecretParams, secret_hash, token_matches


LOCK_NAMESPACE = 0x4C4B  # advisory lock class "LK"


class SecretError(ValueError):
    """The release secret cannot be set or changed; the message says why."""


class LockdownStore:
    """One deployment's lockdown state (`scope` = its task queue); the secret is shared by the database."""

    def __init__(self, engine: sa.Engine, scope: str) -> None:
        self.engine = engine
        self.scope = scope

    def lock(self, session: Session, exclusive: bool) -> None:
        """This scope's advisory lock, held to the end of the transaction. Heavyweight locks queue fairly:
        once an exclusive request waits, later shared requests wait behind it (row locks would let a steady
        stream of shared lockers starve an engage)."""
        fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        session.execute(sa.text(f"SELECT {fn}(:ns, hashtext(:scope))"), {"ns": LOCK_NAMESPACE, "scope": self.scope})

    def read(self, session: Session | None = None) -> LockdownState:
        if session is None:
            with Session(self.engine) as s:
                return self.read(s)
        row = session.get(LockdownStateRow, self.scope)
        if row is None:
            return LockdownState()
        return LockdownState(locked=row.locked, epoch=row.epoch, reason=row.reason, trigger=row.trigger,
                             actor=row.actor, changed_at=row.changed_at)

    def write(self, state: LockdownState) -> None:
        """Persist the state; an older epoch never overwrites a newer one (idempotent under retries)."""
        values = dict(locked=state.locked, epoch=state.epoch, reason=state.reason,
                      trigger=state.trigger.value if state.trigger else None, actor=state.actor,
                      changed_at=state.changed_at)
        with Session(self.engine) as s, s.begin():
            # The exclusive lock waits for gate admissions in progress (they hold the shared lock until their
            # side effect has started), so once this commits nothing is admitted on the old state.
            self.lock(s, exclusive=True)
            s.execute(pg_insert(LockdownStateRow).values(scope=self.scope, locked=False, epoch=0)
                      .on_conflict_do_nothing(index_elements=["scope"]))
            row = s.get(LockdownStateRow, self.scope)
            if row.epoch <= state.epoch:
                for k, v in values.items():
                    setattr(row, k, v)

    # The release secret ------------------------------------------------------------------------
    def secret_params(self) -> SecretParams | None:
        with Session(self.engine) as s:
            row = s.get(LockdownSecretRow, 1)
            return None if row is None else SecretParams(salt_hex=row.salt.hex(), n=row.n, r=row.r, p=row.p)

    def has_secret(self) -> bool:
        return self.secret_params() is not None

    def set_secret(self, secret: str, current: str | None = None) -> None:
        """Store a new secret as a salted scrypt hash; changing one needs the current secret."""
        if len(secret) < MIN_SECRET_CHARS:
            raise SecretError(f"the lockdown secret needs at least {MIN_SECRET_CHARS} characters")
        with Session(self.engine) as s, s.begin():
            row = s.get(LockdownSecretRow, 1, with_for_update=True)
            if row is not None:
                params = SecretParams(salt_hex=row.salt.hex(), n=row.n, r=row.r, p=row.p)
                if current is None or not _equal(secret_hash(current, params), row.hash):
                    raise SecretError("a lockdown secret is already set: give the current one to change it")
            params = SecretParams(salt_hex=os.urandom(16).hex())
            values = dict(salt=bytes.fromhex(params.salt_hex), hash=secret_hash(secret, params), n=params.n,
                          r=params.r, p=params.p, set_at=datetime.now(timezone.utc))
            if row is None:
                s.add(LockdownSecretRow(id=1, **values))
            else:
                for k, v in values.items():
                    setattr(row, k, v)

    def verify_release(self, token: str, epoch: int, actor: str) -> bool:
        """Check a release token in constant time and record the attempt, right or wrong."""
        with Session(self.engine) as s, s.begin():
            row = s.get(LockdownSecretRow, 1)
            ok = row is not None and token_matches(row.hash, epoch, token)
            s.add(ReleaseAttemptRow(scope=self.scope, epoch=epoch, ok=ok, actor=actor[:200]))
        return ok

    def release_attempts(self, epoch: int) -> list[tuple[datetime, bool, str | None]]:
        with Session(self.engine) as s:
            rows = s.scalars(sa.select(ReleaseAttemptRow)
                             .where(ReleaseAttemptRow.scope == self.scope, ReleaseAttemptRow.epoch == epoch)
                             .order_by(ReleaseAttemptRow.id))
            return [(r.at, r.ok, r.actor) for r in rows]


def _equal(a: bytes, b: bytes) -> bool:
    import hmac

    return hmac.compare_digest(a, b)
