"""The codec endpoint (Temporal's remote codec protocol) for the Temporal Web UI and CLI: readable histories for
authorized people only.

`POST /codec/decode` opens sealed payloads for auditors and operators; `POST /codec/encode` seals for nobody (a
person never writes payloads into Temporal: only the platform's entry points do). The Web UI cannot send our
bearer key, so `POST /codec/session` (with the key) sets an HttpOnly, SameSite=Strict cookie that authenticates
the codec routes only; `hybrid-llm up` starts the dev server with `--ui-codec-endpoint` pointing here.
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from temporalio.api.common.v1 import Payload

from domain.principals import AccessRole, Principal
from hybrid_llm.api.auth import CODEC_COOKIE, authenticate, require
from hybrid_llm.api.routes import _AUTH
from hybrid_llm.codec import SealError, SealingCodec
from hybrid_llm.temporal import keyring_for

router = APIRouter(prefix="/codec", tags=["codec"], dependencies=[Depends(authenticate)], responses=_AUTH)
ReaderDep = Annotated[Principal, Depends(require(AccessRole.AUDITOR, AccessRole.OPERATOR))]
MAX_PAYLOADS = 1000
SESSION_S = 8 * 3600


class JsonPayload(BaseModel):
    """A payload as the codec protocol carries it: metadata values and data in base64."""

    model_config = ConfigDict(extra="ignore")
    metadata: dict[str, str] = Field(default_factory=dict)
    data: str = ""


class CodecBody(BaseModel):
    payloads: list[JsonPayload] = Field(max_length=MAX_PAYLOADS)


def _codec(request: Request) -> SealingCodec:
    codec = getattr(request.app.state, "codec", None)
    if codec is None:
        codec = request.app.state.codec = SealingCodec(keyring_for(request.app.state.settings, create=False))
    return codec


def _to_proto(p: JsonPayload) -> Payload:
    try:
        return Payload(metadata={k: base64.b64decode(v, validate=True) for k, v in p.metadata.items()},
                       data=base64.b64decode(p.data, validate=True))
    except ValueError:
        raise HTTPException(422, "payload metadata and data must be base64") from None


def _to_json(p: Payload) -> dict:
    return {"metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
            "data": base64.b64encode(p.data).decode()}


@router.post("/decode")
async def decode(body: CodecBody, request: Request, principal: ReaderDep) -> dict:
    """Open sealed payloads (auditors and operators). A payload that is not ours comes back as it was."""
    del principal
    codec = _codec(request)
    out = []
    for item in body.payloads:
        payload = _to_proto(item)
        try:
            out.append(_to_json(codec.unseal(payload)))
        except SealError:
            out.append(_to_json(payload))
    return {"payloads": out}


@router.post("/encode")
async def encode(body: CodecBody, principal: ReaderDep) -> dict:
    """Refused for everyone: only the platform's own entry points write payloads into Temporal."""
    del body, principal
    raise HTTPException(403, "the codec endpoint seals for nobody: payloads enter Temporal only through the "
                             "platform's entry points (CLI, API, workers)")


@router.post("/session", status_code=204)
async def session(request: Request, response: Response, principal: ReaderDep) -> Response:
    """Remember this key in an HttpOnly cookie for the codec routes, so the Temporal Web UI (same site, another
    port) can decode in this browser: turn on "include cross-origin credentials" in the UI's codec settings."""
    del principal
    key = request.headers.get("authorization", "").partition(" ")[2]
    if not key:
        raise HTTPException(400, "start a codec session with the key in the Authorization header")
    response.status_code = 204
    response.set_cookie(CODEC_COOKIE, key, max_age=SESSION_S, path="/codec", httponly=True, samesite="strict")
    return response
