"""API keys in PostgreSQL: random 256-bit secrets stored only as SHA-256 hashes, with roles, a model allowlist,
budgets, expiry, revocation and suspension.

A key reads `hlk_<id>_<secret>`: `<id>` (12 hex characters) is the visible, non-secret part used to find the row;
`<secret>` is `secrets.token_urlsafe(32)` (256 random bits). Only `sha256(key)` is stored. A fast hash is the right
tool here: a slow password hash (scrypt, argon2) protects low-entropy passwords against guessing, and nobody can
guess through a 2^256 space, so SHA-256 keeps a stolen table useless while costing microseconds per request.
Every lookup reads the row (no cache), so a revocation, suspension or expiry applies to the very next request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.dialects import postgresql

from activities.db.models import Base
from domain.principals import AccessRole, Principal

KEY_PREFIX = "hlk_"
_KEY_RE = re.compile(r"^hlk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
KEY_ID_RE = re.compile(r"^[0-9a-f]{12}$")

api_keys = sa.Table(
    "api_keys", Base.metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("roles", postgresql.ARRAY(sa.String(16)), nullable=False),
    sa.Column("models", postgresql.ARRAY(sa.String(64))),
    sa.Column("daily_tokens", sa.BigInteger),
    sa.Column("rpm", sa.Integer),
    sa.Column("key_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("suspended_at", sa.DateTime(timezone=True)),
    sa.Column("suspended_reason", sa.Text),
    sa.CheckConstraint("octet_length(key_hash) = 32", name="api_keys_sha256"),
)


class KeyRefused(Exception):
    """The key is unknown, malformed, revoked, suspended or expired (the caller answers 401 either way)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownKey(LookupError):
    pass


class KeyRecord(BaseModel):
    """A key as `keys list` shows it: everything but the secret (which is never stored)."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    roles: tuple[AccessRole, ...]
    models: tuple[str, ...] | None = None
    daily_tokens: int | None = Field(default=None, description="token budget per UTC day; None = unlimited")
    rpm: int | None = Field(default=None, description="requests per minute; None = unlimited")
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    suspended_at: datetime | None = None
    suspended_reason: str | None = None

    def status(self, now: datetime | None = None) -> str:
        now = now or datetime.now(UTC)
        if self.revoked_at is not None:
            return "revoked"
        if self.suspended_at is not None:
            return "suspended"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def principal(self) -> Principal:
        return Principal(id=self.id, name=self.name, roles=self.roles, kind="key", models=self.models)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_id_of(key: str) -> str | None:
    """The visible id inside a well-formed key, else None."""
    m = _KEY_RE.match(key)
    return m.group(1) if m else None


def _record(row: sa.Row) -> KeyRecord:
    return KeyRecord(id=row.id, name=row.name, roles=tuple(AccessRole(r) for r in row.roles),
                     models=tuple(row.models) if row.models is not None else None, daily_tokens=row.daily_tokens,
                     rpm=row.rpm, created_at=row.created_at, expires_at=row.expires_at, revoked_at=row.revoked_at,
                     suspended_at=row.suspended_at, suspended_reason=row.suspended_reason)


_PUBLIC_COLUMNS = [c for c in api_keys.c if c.name != "key_hash"]


class KeyStore:
    """Synchronous (call from a thread in async code): one short query per call."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def create(self, name: str, roles: tuple[AccessRole, ...] | list[AccessRole], *,
               models: tuple[str, ...] | list[str] | None = None, daily_tokens: int | None = None,
               rpm: int | None = None, expires_in: timedelta | None = None) -> tuple[KeyRecord, str]:
        """A new key: its record and the key itself, which exists only in this return value."""
        roles = tuple(dict.fromkeys(AccessRole(r) for r in roles))
        # Validate through the Principal contract (name length, roles) before anything is written.
        Principal(id="k" * 12, name=name, roles=roles, models=tuple(models) if models is not None else None)
        if daily_tokens is not None and daily_tokens < 0 or rpm is not None and rpm < 1:
            raise ValueError("daily_tokens must be >= 0 and rpm >= 1")
        if expires_in is not None and expires_in <= timedelta(0):
            raise ValueError("expires_in must be positive")
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            row = conn.execute(api_keys.insert().values(
                id=key_id, name=name, roles=[r.value for r in roles],
                models=list(models) if models is not None else None, daily_tokens=daily_tokens, rpm=rpm,
                key_hash=hash_key(key), created_at=now,
                expires_at=now + expires_in if expires_in is not None else None,
            ).returning(*_PUBLIC_COLUMNS)).one()
        return _record(row), key

    def lookup(self, key: str) -> KeyRecord:
        """The active key's record; KeyRefused (with the reason, for logs, never for the caller) otherwise."""
        key_id = key_id_of(key)
        if key_id is None:
            raise KeyRefused("malformed key")
        # One statement, read only: autocommit spares the BEGIN and ROLLBACK round trips around it (every API call
        # pays this lookup before anything else).
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).one_or_none()
        if row is None or not hmac.compare_digest(row.key_hash, hash_key(key)):
            raise KeyRefused("unknown key")
        record = _record(row)
        status = record.status()
        if status != "active":
            raise KeyRefused(f"{status} key")
        return record

    def get(self, key_id: str) -> KeyRecord:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*_PUBLIC_COLUMNS).where(api_keys.c.id == key_id)).one_or_none()
        if row is None:
            raise UnknownKey(f"no key with id {key_id!r}")
        return _record(row)

    def list(self) -> list[KeyRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*_PUBLIC_COLUMNS).order_by(api_keys.c.created_at)).all()
        return [_record(r) for r in rows]

    def _stamp(self, key_id: str, **values: object) -> KeyRecord:
        with self.engine.begin() as conn:
            row = conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(**values)
                               .returning(*_PUBLIC_COLUMNS)).one_or_none()
        if row is None:
            raise UnknownKey(f"no key with id {key_id!r}")
        return _record(row)

    def revoke(self, key_id: str) -> KeyRecord:
        """Revoked for good, from the next request on (a second revoke keeps the first time)."""
        return self._stamp(key_id, revoked_at=sa.func.coalesce(api_keys.c.revoked_at, sa.func.now()))

    def suspend(self, key_id: str, reason: str) -> KeyRecord:
        """Refused until `resume` (e.g. after repeated critical inputs); unlike revoke, reversible."""
        return self._stamp(key_id, suspended_at=sa.func.coalesce(api_keys.c.suspended_at, sa.func.now()),
                           suspended_reason=reason)

    def resume(self, key_id: str) -> KeyRecord:
        return self._stamp(key_id, suspended_at=None, suspended_reason=None)
