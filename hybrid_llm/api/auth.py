"""Who is calling: every route but the public ones needs `Authorization: Bearer <key>`.

`authenticate` turns the bearer key into the caller's `Principal` (401 with `WWW-Authenticate: Bearer` without a
key, or with an unknown, revoked, suspended or expired one); `require(*roles)` adds the role check (403).
Routers declare `dependencies=[Depends(authenticate)]` and each route names its roles with `require(...)`;
`tests/test_api_auth.py` walks the route table so that a route without both fails the suite.

The key is looked up in PostgreSQL on every request (no cache): a revoked key stops at the next request.
The lookup runs in a worker thread, off the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from domain.principals import AccessRole, Principal

log = logging.getLogger("hybrid_llm.api.auth")

# Routes anyone may call: liveness and the API's own description. Adding to this set is a reviewed decision;
# every other route must carry `require(...)` (the route-table test enforces it).
PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc",
                          # the web console's page and static assets: no data; it calls the API with a key
                          "/console", "/console/{name}"})
ALL_ROLES = tuple(AccessRole)
# The Temporal Web UI cannot send our bearer key to the codec endpoint: a key it stored in this HttpOnly,
# SameSite=Strict cookie (POST /codec/session) authenticates the /codec/ routes, and only those.
CODEC_COOKIE = "hybrid_codec"

_bearer = HTTPBearer(auto_error=False, scheme_name="APIKey",
                     description="An API key from `hybrid-llm keys create` (`hlk_...`).")


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def key_store(request: Request):
    """The app's key store, built on first use (the app starts without the database)."""
    store = getattr(request.app.state, "keys", None)
    if store is None:
        from activities.db import make_engine
        from activities.keys_store import KeyStore

        settings = request.app.state.settings
        store = request.app.state.keys = KeyStore(make_engine(settings.effective_database_url, pool_size=4))
    return store


async def authenticate(request: Request,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    """The caller's principal from its bearer key; 401 otherwise. FastAPI runs it once per request."""
    from activities.keys_store import KeyRefused

    if (credentials is None or not credentials.credentials) and request.url.path.startswith("/codec/"):
        cookie = request.cookies.get(CODEC_COOKIE)
        if cookie:
            credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=cookie)
    if credentials is None or not credentials.credentials:
        raise _unauthorized("authentication required: send `Authorization: Bearer <key>`")
    token = credentials.credentials
    settings = request.app.state.settings
    if settings.oidc_jwks and not token.startswith("hlk_"):
        return await _authenticate_jwt(request, token)
    store = key_store(request)
    try:
        record = await run_in_threadpool(store.lookup, credentials.credentials)
    except KeyRefused as e:
        log.info("refused a bearer key on %s %s: %s", request.method, request.url.path, e.reason)
        raise _unauthorized("invalid, expired, suspended or revoked key") from None
    except sa.exc.OperationalError:
        log.warning("key lookup failed: the database is unreachable", exc_info=True)
        raise HTTPException(503, "cannot check the key: the database is unreachable") from None
    principal = record.principal()
    request.state.principal = principal
    request.state.key_record = record
    return principal


async def _authenticate_jwt(request: Request, token: str) -> Principal:
    from hybrid_llm.api.oidc import JWTVerifier, TokenRefused

    verifier = getattr(request.app.state, "jwt_verifier", None)
    if verifier is None:
        verifier = request.app.state.jwt_verifier = JWTVerifier(request.app.state.settings)
    try:
        principal = await run_in_threadpool(verifier.verify, token)
    except TokenRefused as e:
        log.info("refused a bearer token on %s %s: %s", request.method, request.url.path, e)
        raise _unauthorized("invalid or expired token") from None
    request.state.principal = principal
    request.state.key_record = None
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require(*roles: AccessRole) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the authenticated principal when it holds any of `roles`, else 403."""
    if not roles:
        raise ValueError("require() needs at least one role")
    wanted = tuple(AccessRole(r) for r in roles)

    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.has(*wanted):
            raise HTTPException(403, f"this needs the role {' or '.join(r.value for r in wanted)}; "
                                     f"{principal.label} has {', '.join(principal.roles) or 'no role'}")
        return principal

    check.allowed_roles = frozenset(wanted)  # type: ignore[attr-defined]  # read by the route-table test
    check.__name__ = f"require_{'_or_'.join(r.value for r in wanted)}"
    return check


def allowed_roles(route) -> frozenset[AccessRole] | None:
    """The roles a route's `require(...)` admits (intersection of all of them), or None when it has none."""
    found: frozenset[AccessRole] | None = None
    stack = [route.dependant]
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, "allowed_roles", None)
        if roles is not None:
            found = roles if found is None else found & roles
        stack.extend(dep.dependencies)
    return found


def authenticates(route) -> bool:
    stack = [route.dependant]
    while stack:
        dep = stack.pop()
        if dep.call is authenticate:
            return True
        stack.extend(dep.dependencies)
    return False


def actor_label(principal: Principal) -> str:
    """How an API decision names its author in records that hold at most 200 characters: `api:name (id)`."""
    label = f"api:{principal.label}"
    return label if len(label) <= 200 else f"api:{principal.name[:200 - len(principal.id) - 8]}… ({principal.id})"
