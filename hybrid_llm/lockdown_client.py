"""Engage, inspect and release the lockdown from the CLI and the API (entry-point side).

The release secret stays in this process: only an epoch-bound HMAC token goes to the controller.
"""

from __future__ import annotations

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
    release_token,
    secret_hash,
)
from hybrid_llm.settings import Settings


class LockdownError(RuntimeError):
    """A lockdown operation was refused; the message says why (wrong secret, not locked, slow down...)."""

    def __init__(self, message: str, kind: str = "LockdownError") -> None:
        super().__init__(message)
        self.kind = kind


def store(settings: Settings) -> LockdownStore:
    return LockdownStore(make_engine(settings.effective_database_url, pool_size=1), scope=settings.task_queue)


async def engage(client: Client, settings: Settings, reason: str, actor: str = "user",
                 trigger: Trigger = Trigger.PANIC) -> LockdownState:
    return await _engage(client, settings.task_queue, EngageRequest(reason=reason, trigger=trigger, actor=actor))


async def current(client: Client, settings: Settings) -> LockdownState:
    """The controller's state; before the controller ever ran, what the gate reads."""
    try:
        return await client.get_workflow_handle(controller_id(settings.task_queue)).query("state", result_type=LockdownState)
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:
            raise
    return store(settings).read()


async def release(client: Client, settings: Settings, secret: str, actor: str = "user") -> LockdownState:
    state = await current(client, settings)
    if not state.locked:
        raise LockdownError("the platform is not locked", "NotLocked")
    params = store(settings).secret_params()
    if params is None:
        raise LockdownError("no lockdown secret is set: run `hybrid-llm lockdown set-secret` on a machine with "
                            "database access", "NoSecret")
    token = release_token(secret_hash(secret, params), state.epoch)
    try:
        return await client.get_workflow_handle(controller_id(settings.task_queue)).execute_update(
            "release", ReleaseRequest(token=token, epoch=state.epoch, actor=actor), result_type=LockdownState)
    except WorkflowUpdateFailedError as e:
        cause = e.cause
        if isinstance(cause, ApplicationError):
            raise LockdownError(cause.message, cause.type or "LockdownError") from None
        raise


def set_secret(settings: Settings, secret: str, current_secret: str | None = None) -> None:
    try:
        store(settings).set_secret(secret, current_secret)
    except SecretError as e:
        raise LockdownError(str(e), "SecretRefused") from None
