"""Key management over HTTP (operators only): create (the key is in the answer once), list, revoke."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, BeforeValidator, Field
from starlette.concurrency import run_in_threadpool

from activities.keys_store import KeyRecord, UnknownKey
from activities.usage import Usage, day_start
from domain.principals import AccessRole, Principal
from hybrid_llm.api.auth import ALL_ROLES, authenticate, key_store, require
from hybrid_llm.api.limits import SEE_EVERYTHING, ledger
from hybrid_llm.api.routes import _AUTH
from hybrid_llm.api.schemas import Problem

def _iso_time(value: object) -> object:
    """A time is written as one (ISO 8601): a bare number is not quietly read as seconds since 1970."""
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", value):
        raise ValueError("give an ISO 8601 time, e.g. 2026-11-27T00:00:00Z")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_time)]
router = APIRouter(tags=["keys"], dependencies=[Depends(authenticate)], responses=_AUTH)
OperatorDep = Annotated[Principal, Depends(require(AccessRole.OPERATOR))]
KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="The key's id (the hex part after `hlk_`).")]


class CreateKey(BaseModel):
    model_config = {"extra": "forbid"}
    name: str = Field(min_length=1, max_length=200)
    roles: list[AccessRole] = Field(min_length=1)
    models: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, description="model allowlist; omitted = every model")
    # strict: "12" or 1.0 are type errors, not quietly converted
    daily_tokens: int | None = Field(default=None, ge=0, strict=True,
                                     description="tokens per UTC day; omitted = unlimited")
    rpm: int | None = Field(default=None, ge=1, strict=True, description="requests per minute; omitted = unlimited")
    expires_in_s: float | None = Field(default=None, ge=1, strict=True, le=100 * 365 * 86400,
                                       description="seconds until it expires; omitted = never")


class CreatedKey(KeyRecord):
    key: str = Field(description="The key itself: shown this once, stored only as a hash.")


@router.post("/v1/keys", status_code=201, response_model=CreatedKey, responses={422: {"model": Problem}})
async def create_key(body: CreateKey, request: Request, principal: OperatorDep) -> CreatedKey:
    """A new key; the answer is the only place the key ever appears."""
    expires = timedelta(seconds=body.expires_in_s) if body.expires_in_s is not None else None
    record, key = await run_in_threadpool(
        key_store(request).create, body.name, tuple(body.roles), models=body.models,
        daily_tokens=body.daily_tokens, rpm=body.rpm, expires_in=expires)
    return CreatedKey(**record.model_dump(), key=key)


@router.get("/v1/keys", response_model=list[KeyRecord])
async def list_keys(request: Request, principal: OperatorDep) -> list[KeyRecord]:
    """Every key (never the key itself), oldest first."""
    return await run_in_threadpool(key_store(request).list)


@router.post("/v1/keys/{key_id}/revoke", response_model=KeyRecord,
             responses={404: {"model": Problem}, 409: {"model": Problem}})
async def revoke_key(key_id: KeyId, request: Request, principal: OperatorDep) -> KeyRecord:
    """Revoke a key: refused from its next request on. Not the key making this call (an operator would lock
    themselves out by mistake): revoke it with another operator key, or locally with `hybrid-llm keys revoke`."""
    if key_id == principal.id:
        raise HTTPException(409, "this is the key making the call: revoke it with another operator key or locally")
    try:
        return await run_in_threadpool(key_store(request).revoke, key_id)
    except UnknownKey as e:
        raise HTTPException(404, str(e)) from None


@router.get("/v1/usage", response_model=Usage, tags=["usage"])
async def usage(request: Request, principal: Annotated[Principal, Depends(require(*ALL_ROLES))],
                since: Annotated[IsoTime | None, Query(description="From when (default: today 00:00 UTC).")] = None,
                all: Annotated[bool, Query(  # noqa: A002
                    description="Everyone's (auditors and operators only).")] = False,
                ) -> Usage:
    """Tokens and cost per model (and principal) since `since`: your own, or with `all=true` everyone's."""
    if all and not principal.has(*SEE_EVERYTHING):
        raise HTTPException(403, "everyone's usage needs the auditor or operator role")
    start = since or day_start()
    if start.tzinfo is None:
        raise HTTPException(422, "invalid request: since: give a time zone (e.g. 2026-11-27T00:00:00Z)")
    return await run_in_threadpool(ledger(request).summary, None if all else principal.id, start)


@router.post("/v1/keys/{key_id}/resume", response_model=KeyRecord, responses={404: {"model": Problem}})
async def resume_key(key_id: KeyId, request: Request, principal: OperatorDep) -> KeyRecord:
    """Lift a suspension (e.g. after repeated critical inputs); a revoked or expired key stays refused."""
    try:
        return await run_in_threadpool(key_store(request).resume, key_id)
    except UnknownKey as e:
        raise HTTPException(404, str(e)) from None
