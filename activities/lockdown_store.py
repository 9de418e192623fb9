"""Lockdown state, release secret (as a public key), release attempts and per-principal backoff, strikes,
suspensions and operator alerts in PostgreSQL (shared by every worker)."""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from activities.db.models import (
    LockdownSecretRow,
    LockdownStateRow,
    PrincipalStrikeRow,
    PrincipalSuspensionRow,
    ReleaseAttemptRow,
    ReleaseBackoffRow,
    SecurityAlertRow,
)
from domain.lockdown import (
    MIN_SECRET_CHARS,
    SCHEME_ED25519,
    LockdownState,
    ReleaseCheck,
    ReleaseVerdict,
    SecretParams,
    proof_matches,
    public_key,
    release_backoff_s,
    same_secret,
    strikes_exceeded,
)

LOCK_NAMESPACE = 0x4C4B  # advisory lock class "LK"
NOTIFY_CHANNEL = "hybrid_lockdown"  # payload: the scope whose state changed (workers LISTEN, activities/interrupts.py)


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
            # Delivered at commit: every worker's watcher re-reads the state and stops running side effects.
            s.execute(sa.text("SELECT pg_notify(:ch, :scope)"), {"ch": NOTIFY_CHANNEL, "scope": self.scope})

    # The release secret ------------------------------------------------------------------------
    def secret_params(self) -> SecretParams | None:
        with Session(self.engine) as s:
            row = s.get(LockdownSecretRow, 1)
            return None if row is None else _params(row)

    def has_secret(self) -> bool:
        return self.secret_params() is not None

    def set_secret(self, secret: str, current: str | None = None) -> None:
        """Store a new secret as salt + Ed25519 public key; changing one needs the current secret. Refused while
        any deployment sharing this database is locked: a secret is never set or changed during a lockdown."""
        if len(secret) < MIN_SECRET_CHARS:
            raise SecretError(f"the lockdown secret needs at least {MIN_SECRET_CHARS} characters")
        params = SecretParams(salt_hex=os.urandom(16).hex())
        stored = public_key(secret, params)  # scrypt: before the transaction, not while holding locks
        with Session(self.engine) as s, s.begin():
            # FOR SHARE: an engage (which updates its state row) waits until this commits, so no lockdown can
            # start between the check and the write.
            locked = s.scalars(sa.select(LockdownStateRow.scope).where(LockdownStateRow.locked)
                               .with_for_update(read=True)).all()
            if locked:
                raise SecretError(f"the platform is locked down ({', '.join(sorted(locked))}): the release secret "
                                  "cannot be set or changed during a lockdown")
            row = s.get(LockdownSecretRow, 1, with_for_update=True)
            if row is not None:
                if current is None or not same_secret(current, _params(row), row.hash):
                    raise SecretError("a lockdown secret is already set: give the current one to change it")
            values = dict(salt=bytes.fromhex(params.salt_hex), hash=stored, n=params.n, r=params.r, p=params.p,
                          scheme=SCHEME_ED25519, set_at=datetime.now(timezone.utc))
            if row is None:
                s.add(LockdownSecretRow(id=1, **values))
            else:
                for k, v in values.items():
                    setattr(row, k, v)

    def create_secret_if_missing(self) -> str | None:
        """A fresh random secret (192 bits) when none is set; None when one is (or was set meanwhile)."""
        if self.has_secret():
            return None
        secret = secrets.token_urlsafe(24)
        try:
            self.set_secret(secret)
        except SecretError:
            return None
        return secret

    def verify_release(self, check: ReleaseCheck, releases_needed: int = 1) -> ReleaseVerdict:
        """Check a release proof against the stored public key, under this principal's own backoff (kept here, so
        one principal's wrong guesses never delay another), and record the attempt, right or wrong."""
        who = (check.principal_id or check.actor)[:200]
        with Session(self.engine) as s, s.begin():
            s.execute(pg_insert(ReleaseBackoffRow).values(scope=self.scope, principal_id=who, failures=0)
                      .on_conflict_do_nothing(index_elements=["scope", "principal_id"]))
            backoff = s.get(ReleaseBackoffRow, (self.scope, who), with_for_update=True)
            now = s.scalar(sa.select(sa.func.now()))
            if backoff.next_at is not None and now < backoff.next_at:
                return ReleaseVerdict(ok=False, wait_s=(backoff.next_at - now).total_seconds(),
                                      failed_attempts=backoff.failures, releases_needed=releases_needed)
            row = s.get(LockdownSecretRow, 1)
            reason = None
            if row is None:
                ok, reason = False, "no lockdown secret is set"
            elif row.scheme != SCHEME_ED25519:
                ok, reason = False, ("the stored secret uses the old token scheme, which a database reader could "
                                     "forge: set it again (`hybrid-llm lockdown set-secret --change`) when unlocked")
            else:
                ok = check.principal_id is not None and proof_matches(row.hash, self.scope, check.epoch,
                                                                      check.principal_id, check.token)
            s.add(ReleaseAttemptRow(scope=self.scope, epoch=check.epoch, ok=ok, actor=check.actor[:200],
                                    principal_id=check.principal_id))
            if ok:
                backoff.failures, backoff.next_at = 0, None
            else:
                backoff.failures += 1
                backoff.next_at = now + timedelta(seconds=release_backoff_s(backoff.failures))
            return ReleaseVerdict(ok=ok, failed_attempts=backoff.failures, releases_needed=releases_needed,
                                  reason=reason)

    def release_attempts(self, epoch: int) -> list[tuple[datetime, bool, str | None]]:
        with Session(self.engine) as s:
            rows = s.scalars(sa.select(ReleaseAttemptRow)
                             .where(ReleaseAttemptRow.scope == self.scope, ReleaseAttemptRow.epoch == epoch)
                             .order_by(ReleaseAttemptRow.id))
            return [(r.at, r.ok, r.actor) for r in rows]

    # Strikes, suspensions, alerts --------------------------------------------------------------------
    def record_strike(self, principal_id: str, workflow_id: str | None, reason: str, threshold: int,
                      window_s: float) -> tuple[int, bool]:
        """Count a critical input against `principal_id`; past `threshold` in the window, suspend it and alert the
        operators. Returns (strikes in the window, whether this strike suspended it). Idempotent per workflow."""
        with Session(self.engine) as s, s.begin():
            # One principal's strikes are counted one at a time (two concurrent requests cannot both stay under).
            s.execute(sa.text("SELECT pg_advisory_xact_lock(:ns, hashtext(:p))"), {"ns": LOCK_NAMESPACE + 1,
                                                                                   "p": principal_id})
            seen = workflow_id is not None and s.scalar(sa.select(sa.func.count()).select_from(PrincipalStrikeRow)
                                                        .where(PrincipalStrikeRow.principal_id == principal_id,
                                                               PrincipalStrikeRow.workflow_id == workflow_id))
            if not seen:
                s.add(PrincipalStrikeRow(scope=self.scope, principal_id=principal_id, workflow_id=workflow_id,
                                         reason=reason[:2000]))
                s.flush()
            since = s.scalar(sa.select(sa.func.now())) - timedelta(seconds=window_s)
            strikes = s.scalar(sa.select(sa.func.count()).select_from(PrincipalStrikeRow)
                               .where(PrincipalStrikeRow.principal_id == principal_id,
                                      PrincipalStrikeRow.at >= since))
            if not strikes_exceeded(strikes, threshold) or self._suspended(s, principal_id):
                return strikes, False
            message = (f"principal {principal_id} suspended: {strikes} critical inputs within {window_s:.0f}s "
                       f"(more than {threshold}); last: {reason[:500]}")
            self._suspend(s, principal_id, message, "guardrails")
            return strikes, True

    def suspend(self, principal_id: str, reason: str, by: str) -> None:
        """The hook the keys store honours: a suspended principal's keys authenticate no more."""
        with Session(self.engine) as s, s.begin():
            self._suspend(s, principal_id, reason, by)

    def lift_suspension(self, principal_id: str, by: str) -> bool:
        with Session(self.engine) as s, s.begin():
            row = s.get(PrincipalSuspensionRow, principal_id, with_for_update=True)
            if row is None or row.lifted_at is not None:
                return False
            row.lifted_at = datetime.now(timezone.utc)
            _stamp_key(s, principal_id, suspended=False, reason=None)
            s.add(SecurityAlertRow(scope=self.scope, kind="suspension_lifted", principal_id=principal_id,
                                   message=f"suspension of {principal_id} lifted by {by}"))
            return True

    def is_suspended(self, principal_id: str) -> bool:
        with Session(self.engine) as s:
            return self._suspended(s, principal_id)

    def alerts(self, limit: int = 20) -> list[dict]:
        with Session(self.engine) as s:
            rows = s.scalars(sa.select(SecurityAlertRow).order_by(SecurityAlertRow.id.desc()).limit(limit))
            return [dict(at=r.at.isoformat(), scope=r.scope, kind=r.kind, principal_id=r.principal_id,
                         message=r.message) for r in rows]

    def _suspended(self, s: Session, principal_id: str) -> bool:
        row = s.get(PrincipalSuspensionRow, principal_id)
        return row is not None and row.lifted_at is None

    def _suspend(self, s: Session, principal_id: str, reason: str, by: str) -> None:
        s.execute(pg_insert(PrincipalSuspensionRow).values(principal_id=principal_id, reason=reason[:4000],
                                                           by=by[:200])
                  .on_conflict_do_update(index_elements=["principal_id"],
                                         set_=dict(at=sa.func.now(), reason=reason[:4000], by=by[:200],
                                                   lifted_at=None)))
        s.add(SecurityAlertRow(scope=self.scope, kind="principal_suspended", principal_id=principal_id,
                               message=reason[:4000]))
        _stamp_key(s, principal_id, suspended=True, reason=reason)


def _stamp_key(s: Session, principal_id: str, suspended: bool, reason: str | None) -> None:
    """Where the keys table exists (migration 0006_principals), suspend or resume the principal's API key in the
    same transaction, so the API's key check refuses it at once (a principal's id is its key id)."""
    if s.scalar(sa.text("SELECT to_regclass('api_keys')")) is None:
        return
    if suspended:
        s.execute(sa.text("UPDATE api_keys SET suspended_at = coalesce(suspended_at, now()), suspended_reason = :r "
                          "WHERE id = :id"), {"r": (reason or "")[:4000], "id": principal_id})
    else:
        s.execute(sa.text("UPDATE api_keys SET suspended_at = NULL, suspended_reason = NULL WHERE id = :id"),
                  {"id": principal_id})


def _params(row: LockdownSecretRow) -> SecretParams:
    return SecretParams(salt_hex=row.salt.hex(), n=row.n, r=row.r, p=row.p, scheme=row.scheme)
