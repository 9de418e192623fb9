"""Lockdown: the state, the messages that change it, and how a release is authenticated.

Release authentication (scheme `scrypt-ed25519`): the secret, stretched by scrypt with the stored salt, is the
seed of an Ed25519 key pair. PostgreSQL keeps only the salt and the PUBLIC key. To release, the client derives the
private key from the secret it was given and signs `(scope, epoch, principal id)`; the worker checks the
signature against the stored public key. So:
- neither the secret nor anything that can sign ever enters workflow history or the database;
- whoever can read the database (or history) cannot make a valid proof: that takes the private key, i.e. the
  secret (an offline guess costs one scrypt per try, as for any password hash);
- a proof is good for one principal and one lockdown epoch only: seen in history it cannot release a later lockdown,
  nor be presented by another principal.

Who may do what: a person's engage (trigger `panic`) and every release need a principal with the `operator` role;
automatic triggers come from the platform itself (a system principal, or none from older callers).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.principals import AccessRole, Principal

CONTROLLER_WORKFLOW = "LockdownWorkflow"
# The error type the lockdown gate raises when it refuses a side effect (its details carry the epoch).
LOCKED_DOWN = "LockedDown"


def controller_id(scope: str) -> str:
    """One controller per deployment; a deployment (its `scope`) is its task queue."""
    return f"lockdown-{scope}"


def control_queue(scope: str) -> str:
    """The controller's own task queue: it never waits behind the workload's tasks (hybrid_llm/lockdown_lane.py)."""
    return f"{scope}-lockdown"


# Workflows that pause on the `lockdown` signal (each has the handler).
PAUSABLE_WORKFLOWS = ("RequestWorkflow", "PermissionWorkflow", "DelegationWorkflow", "SandboxWorkflow")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_SECRET_CHARS = 12
SCHEME_ED25519 = "scrypt-ed25519"
SCHEME_LEGACY_HMAC = "scrypt-hmac"  # before 0010: the stored hash was enough to mint a token; refused now
# Error type an activity raises when a lockdown stopped its side effect mid-way (details: the lockdown's epoch).
INTERRUPTED = "InterruptedByLockdown"


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
    # Who engaged or released (principal ids), and the operators whose valid proofs count toward this release.
    principal_id: str | None = None
    release_approvals: list[str] = Field(default_factory=list)
    releases_needed: int = 1


class EngageRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)
    trigger: Trigger = Trigger.PANIC
    actor: str = Field(default="user", max_length=200)
    details: dict[str, str] = Field(default_factory=dict)
    principal: Principal | None = Field(default=None, description="who asked, stamped by the entry point")


class ReleaseRequest(BaseModel):
    token: str = Field(pattern=r"^[0-9a-f]{64}([0-9a-f]{64})?$",
                       description="release_proof(secret, scope, epoch, principal id): an Ed25519 signature")
    epoch: int
    actor: str = Field(default="user", max_length=200)
    principal: Principal | None = Field(default=None, description="who asked, stamped by the entry point")


class LockdownSignal(BaseModel):
    """Sent to every running workflow when the state changes. Only a prompt to re-read the state: a workflow
    never takes `locked`/`epoch` from a signal (anyone who reaches Temporal could send one)."""

    locked: bool
    epoch: int
    reason: str | None = None


class ReleaseCheck(BaseModel):
    token: str
    epoch: int
    actor: str
    principal_id: str | None = None


class ReleaseVerdict(BaseModel):
    """The worker's answer to a release attempt: ok, wrong (with the principal's new backoff), or wait."""

    ok: bool
    wait_s: float = 0.0  # > 0: this principal must wait before trying again (nothing was checked)
    failed_attempts: int = 0  # this principal's wrong secrets in a row
    releases_needed: int = 1  # how many different operators must present a valid proof (a worker setting)
    reason: str | None = None


class StrikeRequest(BaseModel):
    """A critical guardrail hit in a principal's own input (their prompt): counted against them."""

    principal_id: str = Field(min_length=1, max_length=200)
    reason: str = Field(max_length=4000)


class StrikeOutcome(BaseModel):
    strikes: int  # within the window, this one included
    threshold: int
    suspended: bool  # this strike suspended the principal


class SecretParams(BaseModel):
    salt_hex: str
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P
    scheme: str = SCHEME_ED25519


def engage_refusal(request: EngageRequest) -> str | None:
    """Why this engage is refused, or None. A person (panic) needs `operator`; a trigger is the platform's."""
    p = request.principal
    if request.trigger == Trigger.PANIC:
        if p is None or not p.has(AccessRole.OPERATOR) or p.kind == "system":
            return "engaging the lockdown needs a person with the operator role"
        return None
    if p is not None and p.kind != "system":
        return f"only the platform raises {request.trigger.value} lockdowns; a person engages with the panic trigger"
    return None


def release_refusal(request: ReleaseRequest) -> str | None:
    p = request.principal
    if p is None or not p.has(AccessRole.OPERATOR) or p.kind == "system":
        return "releasing the lockdown needs a person with the operator role"
    return None


def secret_hash(secret: str, params: SecretParams) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=bytes.fromhex(params.salt_hex), n=params.n, r=params.r, p=params.p,
                          maxmem=128 * params.n * params.r * 2, dklen=32)


def _signing_key(secret: str, params: SecretParams):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(secret_hash(secret, params))


def public_key(secret: str, params: SecretParams) -> bytes:
    """What the database stores for a secret: the raw 32-byte Ed25519 public key of its scrypt seed."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return _signing_key(secret, params).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def release_message(scope: str, epoch: int, principal_id: str) -> bytes:
    return b"\0".join([b"hybrid-llm lockdown release v1", scope.encode(), str(epoch).encode(), principal_id.encode()])


def release_proof(secret: str, params: SecretParams, scope: str, epoch: int, principal_id: str) -> str:
    """The signature a release carries (hex): needs the secret, good for one scope, epoch and principal."""
    return _signing_key(secret, params).sign(release_message(scope, epoch, principal_id)).hex()


def proof_matches(public: bytes, scope: str, epoch: int, principal_id: str, proof: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public).verify(bytes.fromhex(proof),
                                                          release_message(scope, epoch, principal_id))
    except (InvalidSignature, ValueError):
        return False
    return True


def same_secret(secret: str, params: SecretParams, stored: bytes) -> bool:
    """Whether `secret` is the stored one (either scheme), in constant time."""
    derived = public_key(secret, params) if params.scheme == SCHEME_ED25519 else secret_hash(secret, params)
    return hmac.compare_digest(derived, stored)


def release_backoff_s(failed_attempts: int) -> float:
    """Wait imposed before the next release attempt after `failed_attempts` wrong secrets in a row."""
    return 0.0 if failed_attempts <= 0 else float(min(300, 2 ** min(failed_attempts, 9)))


def strikes_exceeded(strikes: int, threshold: int) -> bool:
    """More than `threshold` critical inputs from one principal in the window suspend that principal."""
    return strikes > threshold
