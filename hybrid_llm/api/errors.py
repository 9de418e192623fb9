"""Every error leaves the API as `{"message": ...}` (plus field errors for 422); never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match
from temporalio.service import RPCError, RPCStatusCode

from hybrid_llm.api.gate import TemporalGate
from hybrid_llm.temporal import TemporalUnavailable

log = logging.getLogger("hybrid_llm.api")

_UNREACHABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
_LOCATIONS = ("body", "path", "query", "header")


def describe_errors(errors: list[dict]) -> str:
    """`prompt: String should have at least 1 character; max_tokens: ...`"""
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        if len(loc) > 1 and loc[0] in _LOCATIONS:
            loc = loc[1:]
        parts.append(f"{'.'.join(loc) or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def _problem(status: int, message: str, detail: list[dict] | None = None) -> JSONResponse:
    body: dict[str, object] = {"message": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    # Drop the echoed input (a rejected 32k-character prompt would come straight back) and doc links.
    detail = [{k: v for k, v in e.items() if k not in ("input", "url")} for e in errors]
    return _problem(422, f"invalid request: {describe_errors(errors)}", jsonable_encoder(detail))


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":  # FastAPI's, for non-UTF-8
        return _problem(422, "invalid request: body: not valid JSON (UTF-8)")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # every method of the path, not just those of the first route that matched it
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return JSONResponse({"message": str(exc.detail)}, status_code=exc.status_code, headers=headers or None)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    return _problem(503, str(exc))


async def _rpc(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RPCError)
    if exc.status in _UNREACHABLE:
        gate: TemporalGate = request.app.state.gate
        return _problem(503, str(gate.unavailable(exc.message)))
    log.warning("Temporal refused %s %s: %s (%s)", request.method, request.url.path, exc.message, exc.status)
    return _problem(502, f"Temporal refused the call: {exc.message}")


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _problem(500, "internal error; the API log has the details")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(TemporalUnavailable, _unavailable)
    app.add_exception_handler(RPCError, _rpc)
    app.add_exception_handler(Exception, _internal)
