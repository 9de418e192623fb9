"""Documents and RAG: `GET /v1/search`, `POST /v1/uploads` (multipart or JSON), upload history."""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from pydantic import BaseModel, Field

from domain.rag import MAX_K, MAX_QUERY_CHARS, BadUpload, check_size, FileHistory, SearchMode, SearchQuery, SearchResults, UploadReceipt
from hybrid_llm import rag_client
from domain.principals import AccessRole, Principal
from hybrid_llm.api.auth import authenticate, require
from hybrid_llm.api.limits import admit
from hybrid_llm.api.routes import _AUTH, _UNAVAILABLE, GateDep, SettingsDep, UserDep
from hybrid_llm.api.schemas import Problem

router = APIRouter(tags=["documents"], dependencies=[Depends(authenticate)], responses=_AUTH)
DocReaderDep = Annotated[Principal, Depends(require(AccessRole.USER, AccessRole.AUDITOR, AccessRole.OPERATOR))]


class UploadBody(BaseModel):
    model_config = {"extra": "forbid"}
    name: str = Field(min_length=1, max_length=1024, description="Name under uploads/, e.g. notes.md")
    content: str | None = Field(default=None, description="UTF-8 text content")
    content_base64: str | None = Field(default=None, pattern=r"^[A-Za-z0-9+/]*={0,2}$",
                                       description="Or the bytes, base64 (e.g. a PDF)")
    wait: bool = Field(default=False, description="Answer once indexed.")


class Uploaded(UploadReceipt):
    workflow_id: str
    result: dict | None = None


def _uploads(request: Request):
    uploads = getattr(request.app.state, "uploads", None)
    if uploads is None:
        uploads = request.app.state.uploads = rag_client.build_uploads(request.app.state.settings)
    return uploads


def _refuse(e: Exception) -> HTTPException:
    if isinstance(e, BadUpload) and e.code == "too_large":
        return HTTPException(413, str(e))
    return HTTPException(422, str(e))


@router.get("/v1/search", response_model=SearchResults, responses={422: {"model": Problem}, **_UNAVAILABLE})
async def search(request: Request, gate: GateDep, settings: SettingsDep, principal: DocReaderDep,
                 q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="The query.")],
                 k: Annotated[int, Query(ge=1, le=MAX_K, description="How many passages.")] = 5,
                 mode: Annotated[SearchMode, Query(description="hybrid, vector or text.")] = "hybrid",
                 per_document: Annotated[int | None, Query(ge=1, le=MAX_K, description="At most this many "
                                                           "passages of one document.")] = None) -> SearchResults:
    """The k passages that best match `q` by meaning and by words, best first, with file, version and position;
    passages the guardrails flagged at ingestion carry `flagged` and their `finding`."""
    await admit(request, principal)
    return await rag_client.search(await gate.client(), settings,
                                   SearchQuery(query=q, k=k, mode=mode, per_document=per_document))


_UPLOAD_FORM = {"type": "object", "required": ["file"], "properties": {
    "file": {"type": "string", "format": "binary"}, "name": {"type": "string", "minLength": 1, "maxLength": 1024},
    "wait": {"type": "boolean"}}}


@router.post("/v1/uploads", status_code=202, response_model=Uploaded,
             responses={413: {"model": Problem}, 422: {"model": Problem}, **_UNAVAILABLE},
             # The body is read by hand (JSON or multipart, size-checked first): document both forms.
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": UploadBody.model_json_schema()},
                 "multipart/form-data": {"schema": _UPLOAD_FORM}}}})
async def upload(request: Request, gate: GateDep, settings: SettingsDep, principal: UserDep) -> Uploaded:
    """Store a versioned upload and start indexing it. Multipart (`file`, optional `name`, `wait`) or JSON
    `{"name", "content" | "content_base64", "wait"?}`. 413 over the size limit; 422 for empty, binary,
    undecodable or unsupported files. 200 instead of 202 with `wait`."""
    from activities.uploads import UnknownVersion, UploadRefused, upload_path

    await admit(request, principal)
    name, data, wait = await _read_upload(request, settings.max_upload_bytes)
    uploads = _uploads(request)
    try:
        check_size(name, len(data), settings.max_upload_bytes)
        await asyncio.to_thread(uploads.validate, upload_path(name), data)
        client = await gate.client()
        receipt, handle = await rag_client.upload(client, settings, uploads, name, data)
    except (BadUpload, UploadRefused, UnknownVersion) as e:
        raise _refuse(e) from None
    result = None
    if wait:
        try:
            result = (await rag_client.wait(handle)).model_dump(mode="json")
        except rag_client.IngestFailed as e:
            raise HTTPException(422 if e.kind == "BadUpload" else 500, f"{e.kind}: {e}") from None
    return Uploaded(**receipt.model_dump(), workflow_id=handle.id, result=result)


@router.get("/v1/uploads/history", response_model=FileHistory, responses={404: {"model": Problem}})
async def history(request: Request, principal: DocReaderDep,
                  path: Annotated[str, Query(min_length=1, max_length=4096)]) -> FileHistory:
    """Every version of an upload."""
    from activities.uploads import UnknownVersion, UploadRefused

    try:
        return await asyncio.to_thread(_uploads(request).history, path)
    except UnknownVersion as e:
        raise HTTPException(404, str(e)) from None
    except UploadRefused as e:
        raise HTTPException(422, str(e)) from None


async def _read_upload(request: Request, max_bytes: int) -> tuple[str, bytes, bool]:
    kind = request.headers.get("content-type", "")
    declared = int(request.headers.get("content-length") or 0)
    if declared > 2 * max_bytes + 65536:  # base64 or multipart overhead; refused before reading the body
        raise HTTPException(413, f"request of {declared:,} bytes is over the upload limit of {max_bytes:,} bytes")
    if kind.startswith("multipart/form-data"):
        try:
            form = await request.form()
        except StarletteHTTPException as e:  # Starlette's 400: the multipart body does not parse
            raise HTTPException(422, f"invalid request: body: {e.detail}") from None
        file = form.get("file")
        if file is None or isinstance(file, str):
            raise HTTPException(422, "invalid request: file: a multipart field `file` is required")
        data = await file.read()
        name = str(form.get("name") or file.filename or "")
        wait = str(form.get("wait", "false")).lower() in ("1", "true", "yes")
        if not name:
            raise HTTPException(422, "invalid request: name: give the file a name")
        return name, data, wait
    try:
        body = UploadBody.model_validate_json(await request.body())
    except ValueError as e:
        raise HTTPException(422, f"invalid request: {e}") from None
    if (body.content is None) == (body.content_base64 is None):
        raise HTTPException(422, "invalid request: give exactly one of content and content_base64")
    if body.content is not None:
        return body.name, body.content.encode(), body.wait
    try:
        return body.name, base64.b64decode(body.content_base64 or "", validate=True), body.wait
    except (binascii.Error, ValueError):  # ValueError: not even ASCII
        raise HTTPException(422, "invalid request: content_base64 is not valid base64") from None
