"""Engage, inspect and release the lockdown from the CLI and the API (entry-point side).

The entry point stamps the authenticated principal on every engage and release. The release secret stays in this
process: it derives (scrypt, off the event loop) the Ed25519 key whose public half the database stores, and only a
signature bound to this deployment, this lockdown's epoch and this principal goes to the controller.
"""

from __future__ import annotations

import asyncio
import functools
import getpass

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.db import make_engine
from activities.lockdown import engage as _engage
from activities.lockdown_store import LockdownStore, SecretError
from domain.lockdown import (
    EngageRequest,
    LockdownState,
    ReleaseRequest,
    Trigger,
    controller_id,
    release_proof,
)
from domain.principals import AccessRole, Principal
from hybrid_llm.settings import Settings


class LockdownError(RuntimeError):
    """A lockdown operation was refused; the message says why (wrong secret, not locked, slow down...)."""

    def __init__(self, message: str, kind: str = "LockdownError") -> None:
        super().__init__(message)
        self.kind = kind


def local_operator(name: str | None = None) -> Principal:
    """The person at the machine that runs `up` (the CLI there, with database access): the local operator."""
    return Principal(id="local-operator", name=name or f"cli:{getpass.getuser()}", roles=(AccessRole.OPERATOR,),
                     kind="local")


@functools.lru_cache(maxsize=8)
def _engine(url: str):
    return make_engine(url, pool_size=2)  # one per database for the process (the API calls this per request)


def store(settings: Settings) -> LockdownStore:
    return LockdownStore(_engine(settings.effective_database_url), scope=settings.task_queue)


async def engage(client: Client, settings: Settings, reason: str, principal: Principal | None = None,
                 trigger: Trigger = Trigger.PANIC, *, actor: str | None = None) -> LockdownState:
    """`principal`: who asks (the controller refuses a person without `operator`). `actor` (older callers on the
    machine that runs `up`): the local operator under that name."""
    if principal is None and actor is not None:
        principal = local_operator(actor)
    request = EngageRequest(reason=reason, trigger=trigger, principal=principal,
                            actor=principal.label if principal else "unknown")
    try:
        return await _engage(client, settings.task_queue, request)
    except WorkflowUpdateFailedError as e:
        raise _refused(e) from None


async def current(client: Client, settings: Settings) -> LockdownState:
    """The controller's state; before the controller ever ran, what the gate reads."""
    try:
        return await client.get_workflow_handle(controller_id(settings.task_queue)).query("state", result_type=LockdownState)
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:
            raise
    return store(settings).read()


async def release(client: Client, settings: Settings, secret: str, principal: Principal | None = None, *,
                  actor: str | None = None) -> LockdownState:
    """Release (or, with two operators required, add this operator's proof). Returns the controller's state.
    `actor` as for `engage`."""
    if principal is None and actor is not None:
        principal = local_operator(actor)
    if principal is None or not principal.has(AccessRole.OPERATOR):
        raise LockdownError("releasing the lockdown needs a person with the operator role", "PermissionDenied")
    state = await current(client, settings)
    if not state.locked:
        raise LockdownError("the platform is not locked", "NotLocked")
    params = await asyncio.to_thread(store(settings).secret_params)
    if params is None:
        raise LockdownError("no lockdown secret is set: `hybrid-llm up` makes one, or an operator runs "
                            "`hybrid-llm lockdown set-secret` before anything locks", "NoSecret")
    # scrypt takes ~50 ms of CPU: never on the API's event loop.
    proof = await asyncio.to_thread(release_proof, secret, params, settings.task_queue, state.epoch, principal.id)
    try:
        return await client.get_workflow_handle(controller_id(settings.task_queue)).execute_update(
            "release", ReleaseRequest(token=proof, epoch=state.epoch, actor=principal.label, principal=principal),
            result_type=LockdownState)
    except WorkflowUpdateFailedError as e:
        raise _refused(e) from None


def set_secret(settings: Settings, secret: str, current_secret: str | None = None) -> None:
    try:
        store(settings).set_secret(secret, current_secret)
    except SecretError as e:
        raise LockdownError(str(e), "SecretRefused") from None


def alerts(settings: Settings, limit: int = 20) -> list[dict]:
    """Recent security alerts for operators (suspended principals, ...), newest first."""
    return store(settings).alerts(limit)


def _refused(e: WorkflowUpdateFailedError) -> Exception:
    cause = e.cause
    if isinstance(cause, ApplicationError):
        return LockdownError(cause.message, cause.type or "LockdownError")
    return e
