"""OpenAI-compatible endpoints: `POST /v1/chat/completions` (plain and streamed) and `GET /v1/models`.

Each completion is one durable RequestWorkflow (an `Idempotency-Key` header makes its request id, so a retried
call finds the same run). A streamed answer is read from the workflow's answer stream: a client that reconnects
(same Idempotency-Key and `Last-Event-ID`, or `GET /v1/chat/completions/{id}/stream`) resumes where it stopped.
Errors leave in OpenAI's shape `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.requests import REQUEST_ID_PATTERN, RequestResult, workflow_id_for
from domain.streaming import AnswerEnd
from hybrid_llm.answer_client import Delta, follow
from hybrid_llm.api.errors import describe_errors
from hybrid_llm.api.openai_schemas import OPENAI_ERRORS, ChatCompletionRequest, error_body, sse
from hybrid_llm.api.auth import authenticate
from hybrid_llm.api.limits import admit, claim, may_read, release
from hybrid_llm.api.routes import _AUTH, AnyRoleDep, GateDep, ReaderDep, SettingsDep, UserDep
from hybrid_llm.api.routes import pool as pool_view
from hybrid_llm.request_client import failure_message, start_request
from hybrid_llm.temporal import TemporalUnavailable

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 409: "invalid_request_error", 422: "invalid_request_error",
          429: "rate_limit_error", 503: "service_unavailable"}
# A failed request's error type (ApplicationError.type) -> HTTP status and OpenAI code.
_FAILURES = {"InvalidRequest": (400, "invalid_request"), "UnknownModel": (404, "model_not_found"),
             "Blocked": (400, "content_filter"), "NoModelAvailable": (503, "model_unavailable"),
             "BadRequest": (400, "invalid_request"), "LockedDown": (503, "locked_down")}


def openai_error(status: int, message: str, code: str | None = None, param: str | None = None,
                 headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, _TYPES.get(status, "api_error"), code, param), status_code=status,
                        headers=headers)


class OpenAIRoute(APIRoute):
    """Every error of these routes, validation and authentication included, in OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as e:
                errors = list(e.errors())
                loc = [str(p) for p in errors[0].get("loc", ())][1:] if errors else []
                return openai_error(400, f"invalid request: {describe_errors(errors)}", "invalid_request",
                                    ".".join(loc) or None)
            except HTTPException as e:
                return openai_error(e.status_code, str(e.detail), headers=getattr(e, "headers", None))
            except TemporalUnavailable as e:
                return openai_error(503, str(e), "temporal_unavailable")
            except RPCError as e:
                if e.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                    return openai_error(503, str(request.app.state.gate.unavailable(e.message)), "temporal_unavailable")
                raise

        return wrapped


router = APIRouter(tags=["openai"], route_class=OpenAIRoute, dependencies=[Depends(authenticate)],
                   responses=OPENAI_ERRORS)
_SSE = {200: {"content": {"application/json": {}, "text/event-stream": {}},
              "description": "the completion; with `stream: true`, server-sent events"}}
CompletionId = Annotated[str, Path(pattern=r"^(chatcmpl-)?[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]


def _model_entry(model_id: str, owned_by: str) -> dict:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owned_by}


@router.get("/v1/models")
async def list_models(gate: GateDep, settings: SettingsDep, principal: AnyRoleDep) -> dict:
    """OpenAI's model list: `auto` (our router decides) and every enabled model of the worker's pool that the key
    may use. (The pool itself, with load and health, is `GET /v1/pool`.)"""
    snapshot = await pool_view(gate, settings, principal)
    models = [_model_entry("auto", "hybrid-llm")]
    models += [_model_entry(m.spec.id, "local" if m.spec.local else m.spec.provider) for m in snapshot.models
               if m.spec.enabled and (principal.models is None or m.spec.id in principal.models)]
    return {"object": "list", "data": models}


@router.get("/v1/models/{model_id}")
async def get_model(model_id: str, gate: GateDep, settings: SettingsDep, principal: AnyRoleDep) -> dict:
    found = next((m for m in (await list_models(gate, settings, principal))["data"] if m["id"] == model_id), None)
    if found is None:
        raise HTTPException(404, f"The model '{model_id}' does not exist")
    return found


@router.post("/v1/chat/completions", response_model=None, responses=_SSE)
async def chat_completions(body: ChatCompletionRequest, request: Request, gate: GateDep, settings: SettingsDep,
                           principal: UserDep,
                           idempotency_key: Annotated[str | None, Header(pattern=REQUEST_ID_PATTERN)] = None,
                           last_event_id: Annotated[str | None, Header()] = None) -> Response:
    """OpenAI's chat completion: one durable request workflow per call; `stream: true` answers with server-sent
    events as the model generates. Retrying with the same `Idempotency-Key` finds the same run (and its answer);
    add `Last-Event-ID` to resume a stream after the characters already received. An Idempotency-Key is per caller:
    another caller's is refused (409)."""
    await admit(request, principal, body.model)  # allowlist (403), requests per minute and token budget (429)
    request_id = idempotency_key or uuid.uuid4().hex
    try:
        user_request = body.to_user_request(request_id)
    except ValueError as e:
        return openai_error(400, str(e), "invalid_request", "messages")
    client = await gate.client()
    if idempotency_key is None:
        await _claim_while_starting(request, principal, client, settings, user_request)
    else:
        created = await claim(request, principal, workflow_id_for(request_id), request_id)
        try:
            # A caller-chosen id that this call just claimed may still name a workflow another entry point started
            # (the local CLI writes no owner row): the start itself refuses it (no extra round trip), so the caller
            # neither becomes its owner nor reads its answer. A retry of our own call finds its run as before.
            await start_request(client, settings, user_request, principal=principal, only_new=created)
        except WorkflowAlreadyStartedError:
            raise await release(request, principal, workflow_id_for(request_id)) from None
    completion_id = f"chatcmpl-{request_id}"
    headers = {"X-Request-Id": request_id}
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return _stream_response(client, request_id, body.model, _resume_point(last_event_id), include_usage, headers)
    try:
        result: RequestResult = await client.get_workflow_handle(
            workflow_id_for(request_id), result_type=RequestResult).result()
    except WorkflowFailureError as e:
        return _failure_response(e)
    usage = {"prompt_tokens": result.usage.prompt_tokens, "completion_tokens": result.usage.completion_tokens,
             "total_tokens": result.usage.total_tokens}
    return JSONResponse({
        "id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": result.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.answer, "refusal": None},
                     "finish_reason": result.finish_reason or "stop", "logprobs": None}],
        "usage": usage, "system_fingerprint": None}, headers=headers)


@router.get("/v1/chat/completions/{completion_id}/stream", response_model=None,
            responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
async def resume_stream(completion_id: CompletionId, request: Request, gate: GateDep, principal: ReaderDep,
                        after: int = 0, last_event_id: Annotated[str | None, Header()] = None) -> Response:
    """Reconnect to a streamed completion (for EventSource and other SSE clients): the events after `Last-Event-ID`
    (or `after` characters), then the end. Users follow their own requests; auditors and operators any."""
    request_id = completion_id.removeprefix("chatcmpl-")
    if not await may_read(request, principal, workflow_id_for(request_id)):
        raise HTTPException(404, f"no completion with id {completion_id!r}")
    client = await gate.client()
    try:
        await client.get_workflow_handle(workflow_id_for(request_id)).describe()
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"no completion with id {completion_id!r}") from None
        raise
    have = _resume_point(last_event_id) if last_event_id is not None else max(0, after)
    return _stream_response(client, request_id, "auto", have, True, {"X-Request-Id": request_id})


async def _claim_while_starting(request: Request, principal, client: Client, settings, user_request) -> None:
    """A request id this call chose itself (a fresh uuid4, not yet told to anyone) cannot be anyone else's: its owner
    row is written while the workflow starts, not before (one database commit off the time to first token). Both
    finish before the caller learns the id. Should the claim fail (the database), the fresh run is ended and the
    error raised, as if nothing had started."""
    workflow_id = workflow_id_for(user_request.request_id)
    claimed, started = await asyncio.gather(
        claim(request, principal, workflow_id, user_request.request_id),
        start_request(client, settings, user_request, principal=principal, only_new=True), return_exceptions=True)
    if isinstance(claimed, BaseException):
        if not isinstance(started, BaseException):
            with contextlib.suppress(RPCError):
                await started.terminate(reason="its owner could not be recorded")
        raise claimed
    if isinstance(started, BaseException):
        raise started


def _resume_point(last_event_id: str | None) -> int:
    """Our event ids are the number of answer characters the client has after that event."""
    try:
        return max(0, int(last_event_id)) if last_event_id else 0
    except ValueError:
        return 0


def _failure_response(e: WorkflowFailureError) -> JSONResponse:
    kind, message = failure_message(e)
    status, code = _FAILURES.get(kind, (500, "request_failed"))
    return openai_error(status, f"{kind}: {message}", code, "model" if code == "model_not_found" else None)


def _stream_response(client: Client, request_id: str, model: str, have: int, include_usage: bool,
                     headers: dict) -> StreamingResponse:
    return StreamingResponse(_events(client, request_id, model, have, include_usage), media_type="text/event-stream",
                             headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _events(client: Client, request_id: str, model: str, have: int, include_usage: bool) -> AsyncIterator[bytes]:
    completion_id, created = f"chatcmpl-{request_id}", int(time.time())

    def chunk(delta: dict, finish: str | None = None, **extra) -> dict:
        return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": None, "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                                        "logprobs": None}], **extra}

    yield sse(chunk({"role": "assistant", "content": ""}), str(have))
    end: AnswerEnd | None = None
    workflow_id = workflow_id_for(request_id)
    async for event in follow(client, workflow_id, have):
        if isinstance(event, Delta):
            have = event.chars
            yield sse(chunk({"content": event.text}), str(have))
        else:
            end = event
    if end is None:  # closed without an end: failed, or answered without streaming
        try:
            result: RequestResult = await client.get_workflow_handle(workflow_id, result_type=RequestResult).result()
        except WorkflowFailureError as e:
            kind, message = failure_message(e)
            status, code = _FAILURES.get(kind, (500, "request_failed"))
            yield sse(error_body(f"{kind}: {message}", _TYPES.get(status, "api_error"), code))
            return
        if len(result.answer) > have:
            yield sse(chunk({"content": result.answer[have:]}), str(len(result.answer)))
        end = AnswerEnd(model=result.model, finish_reason=result.finish_reason, chars=len(result.answer),
                        prompt_tokens=result.usage.prompt_tokens, completion_tokens=result.usage.completion_tokens)
    model = end.model
    yield sse(chunk({}, end.finish_reason or "stop"), str(end.chars))
    if include_usage:
        yield sse({"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [], "usage": {"prompt_tokens": end.prompt_tokens,
                                            "completion_tokens": end.completion_tokens,
                                            "total_tokens": end.prompt_tokens + end.completion_tokens}})
    yield sse("[DONE]")
