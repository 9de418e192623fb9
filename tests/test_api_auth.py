"""Authentication and roles on every route, generated from the app's route table (real PostgreSQL keys).

A route added without `dependencies=[Depends(authenticate)]` and a `require(...)` fails
`test_every_route_refuses_anonymous_and_wrong_role_callers`.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from fastapi.routing import iter_route_contexts

from activities.keys_store import KeyStore
from domain.principals import AccessRole
from hybrid_llm.api import create_app
from hybrid_llm.api.auth import PUBLIC_PATHS, allowed_roles, authenticates
from hybrid_llm.settings import Settings
from tests.conftest import bearer

_PARAM = re.compile(r"\{[^}]+\}")
_FORGED = "hlk_000000000000_" + "A" * 43


def _calls(app) -> list[tuple[str, str, object]]:
    """(method, path with dummy parameters, route) for every route of the app, included routers flattened."""
    calls = []
    for route in iter_route_contexts(app.routes):
        path = route.path
        if path in PUBLIC_PATHS:
            continue
        assert getattr(route, "dependant", None) is not None, f"{path}: not an API route ({route!r})"
        for method in sorted((route.methods or {"GET"}) - {"HEAD", "OPTIONS"}):
            calls.append((method, _PARAM.sub("x1", path), route))
    return calls


@pytest.fixture
async def http(settings: Settings):
    app = create_app(settings)  # no lifespan: refused calls never reach Temporal
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield app, client


async def test_every_route_refuses_anonymous_and_wrong_role_callers(http, engine, api_keys):
    app, client = http
    store = KeyStore(engine)
    calls = _calls(app)
    assert len(calls) >= 15  # the table really was walked
    wrong_keys: dict[frozenset, str] = {}
    for method, path, route in calls:
        where = f"{method} {route.path}"
        for headers in ({}, bearer(_FORGED), {"Authorization": "Basic dXNlcjpwYXNz"}, bearer("")):
            r = await client.request(method, path, headers=headers)
            assert r.status_code == 401, (where, headers, r.status_code, r.text)
            assert r.headers["www-authenticate"] == "Bearer", where
            assert r.json()["message"]

        assert authenticates(route), f"{where} does not depend on authenticate"
        roles = allowed_roles(route)
        assert roles, f"{where} has no require(...) role check"

        others = frozenset(AccessRole) - roles
        if others not in wrong_keys:
            wrong_keys[others] = store.create("test-wrong-role", tuple(others))[1]
        r = await client.request(method, path, headers=bearer(wrong_keys[others]))
        assert r.status_code == 403, (where, sorted(others), r.status_code, r.text)


async def test_healthz_and_the_api_description_stay_open(http):
    _, client = http
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get("/healthz")).status_code in (200, 503)  # open: never 401


async def test_a_key_with_the_right_id_but_a_wrong_secret_is_refused(http, api_keys):
    _, client = http
    principal, key = api_keys["user"]
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    r = await client.get("/v1/lockdown", headers=bearer(forged))
    assert r.status_code == 401
    assert (await client.get("/v1/lockdown", headers=bearer(key))).status_code != 401


async def test_revoked_key_stops_at_once(http, engine):
    _, client = http
    store = KeyStore(engine)
    record, key = store.create("soon-revoked", (AccessRole.OPERATOR,))
    ok = await client.get("/v1/models", headers=bearer(key), params={})
    assert ok.status_code not in (401, 403), ok.text
    store.revoke(record.id)
    refused = await client.get("/v1/models", headers=bearer(key))
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"


async def test_suspended_key_is_refused_until_resumed(http, engine):
    _, client = http
    store = KeyStore(engine)
    record, key = store.create("suspect", (AccessRole.USER,))
    store.suspend(record.id, "too many critical inputs")
    assert (await client.get("/v1/lockdown", headers=bearer(key))).status_code == 401
    store.resume(record.id)
    assert (await client.get("/v1/lockdown", headers=bearer(key))).status_code != 401


async def test_expired_key_is_refused(http, engine):
    _, client = http
    store = KeyStore(engine)
    record, key = store.create("short-lived", (AccessRole.USER,), expires_in=timedelta(seconds=1))
    assert record.expires_at is not None
    while store.get(record.id).status() == "active":
        await asyncio.sleep(0.2)
    assert (await client.get("/v1/lockdown", headers=bearer(key))).status_code == 401
    # And one that expired long ago, written straight into the table.
    old, old_key = store.create("old", (AccessRole.USER,), expires_in=timedelta(days=1))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE api_keys SET expires_at = now() - interval '1 day' WHERE id = :id"),
                     {"id": old.id})
    assert (await client.get("/v1/lockdown", headers=bearer(old_key))).status_code == 401


def test_keys_are_stored_only_as_hashes(engine):
    store = KeyStore(engine)
    record, key = store.create("hashed", (AccessRole.USER,), models=("echo",), daily_tokens=100, rpm=5)
    assert key.startswith(f"hlk_{record.id}_") and len(key.split("_", 2)[2]) == 43  # 256 random bits
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM api_keys WHERE id = :id"), {"id": record.id}).mappings().one()
    secret = key.split("_", 2)[2]
    for column, value in row.items():
        text = value.hex() if isinstance(value, (bytes, memoryview)) else str(value)
        assert secret not in text and key not in text, column
    assert bytes(row["key_hash"]) == hashlib.sha256(key.encode()).digest()
    assert store.lookup(key).principal().models == ("echo",)
    assert "key" not in record.model_dump() and "key_hash" not in record.model_dump()
    assert len({store.create("n", (AccessRole.USER,))[1] for _ in range(5)}) == 5
