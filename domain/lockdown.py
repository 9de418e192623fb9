"""Lockdown: the state, the messages that change it, and how a release is authenticated.

Release authentication never puts the secret (or its hash) in workflow history: the client derives the
scrypt hash of the secret it was given, then sends only an HMAC of the lockdown's epoch keyed with that hash.
The worker recomputes the HMAC from the stored hash and compares in constant time. A token is good for one
epoch only, so a token seen in history cannot release a later lockdown.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

CONTROLLER_WORKFLOW = "LockdownWorkflow"
# The error type the lockdown gate raises when it refuses a side effect (its details carry the epoch).
LOCKED_DOWN = "LockedDown"


def controller_id(scope: str) -> str:
    """One controller per deployment; a deployment (its `scope`) is its task queue."""
    return f"lockdown-{scope}"


# Workflows that pause on the `lockdown` signal (each has the handler).
PAUSABLE_WORKFLOWS = ("RequestWorkflow", "PermissionWorkflow", "DelegationWorkflow", "SandboxWorkflow")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_SECRET_CHARS = 12


class Trigger(StrEnum):
    PANIC = "panic"  # a person pressed the button
    SECURITY_ALERT = "security_alert"  # a critical guardrail hit
    PERMISSION_FAILURES = "permission_failures"
    RESOURCE_EXHAUSTION = "resource_exhaustion"


class LockdownState(BaseModel):
    locked: bool = False
    epoch: int = 0  # +1 on every engage and every release
    reason: str | None = None
    trigger: Trigger | None = None
    actor: str | None = None
    changed_at: datetime | None = None
    failed_release_attempts: int = 0


class EngageRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)
    trigger: Trigger = Trigger.PANIC
    actor: str = Field(default="user", max_length=200)
    details: dict[str, str] = Field(default_factory=dict)


class ReleaseRequest(BaseModel):
    token: str = Field(pattern=r"^[0-9a-f]{64}$", description="release_token(secret_hash, epoch)")
    epoch: int
    actor: str = Field(default="user", max_length=200)


class LockdownSignal(BaseModel):
    """Sent to every running workflow when the state changes."""

    locked: bool
    epoch: int
    reason: str | None = None


class ReleaseCheck(BaseModel):
    token: str
    epoch: int
    actor: str


class SecretParams(BaseModel):
    salt_hex: str
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P


def secret_hash(secret: str, params: SecretParams) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=bytes.fromhex(params.salt_hex), n=params.n, r=params.r, p=params.p,
                          maxmem=128 * params.n * params.r * 2, dklen=32)


def release_token(hashed: bytes, epoch: int) -> str:
    return hmac.new(hashed, f"release:{epoch}".encode(), hashlib.sha256).hexdigest()


def token_matches(hashed: bytes, epoch: int, token: str) -> bool:
    return hmac.compare_digest(release_token(hashed, epoch), token)


def release_backoff_s(failed_attempts: int) -> float:
    """Wait imposed before the next release attempt after `failed_attempts` wrong secrets in a row."""
    return 0.0 if failed_attempts <= 0 else float(min(300, 2 ** min(failed_attempts, 9)))
