"""The codec endpoint the Temporal Web UI decodes sealed histories through: auditors and operators only, encoding
for nobody, a cookie session for the browser, CORS for the UI's origin only."""

from __future__ import annotations

import base64

import httpx
import pytest

from hybrid_llm.api import create_app
from hybrid_llm.temporal import keyring_of
from tests.conftest import bearer, scripted
from tests.helpers import ask_and_wait

UI = "http://127.0.0.1:8233"


@pytest.fixture
async def api(settings, client):
    settings.ui_origins = (UI,)  # an external Temporal's Web UI (the embedded one's origin is always allowed)
    app = create_app(settings, client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as http:
        yield http


def as_json(payload) -> dict:
    return {"metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
            "data": base64.b64encode(payload.data).decode()}


async def sealed_input(client, settings, run_worker, scripted_pool) -> dict:
    async with run_worker(scripted_pool(scripted("echo"))):
        handle, _ = await ask_and_wait(client, settings, "codec endpoint pineapple")
    history = await handle.fetch_history()
    return as_json(history.events[0].workflow_execution_started_event_attributes.input.payloads[0])


async def test_auditors_read_sealed_histories_users_do_not(api, client, settings, run_worker, scripted_pool,
                                                           api_keys):
    body = {"payloads": [await sealed_input(client, settings, run_worker, scripted_pool)]}
    assert b"pineapple" not in base64.b64decode(body["payloads"][0]["data"])
    assert (await api.post("/codec/decode", json=body)).status_code == 401
    assert (await api.post("/codec/decode", json=body, headers=bearer(api_keys["user"][1]))).status_code == 403
    for role in ("auditor", "operator"):
        r = await api.post("/codec/decode", json=body, headers=bearer(api_keys[role][1]))
        assert r.status_code == 200, r.text
        opened = r.json()["payloads"][0]
        assert base64.b64decode(opened["metadata"]["encoding"]) == b"json/plain"
        assert b"pineapple" in base64.b64decode(opened["data"])


async def test_the_codec_endpoint_seals_for_nobody(api, api_keys):
    body = {"payloads": [{"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                          "data": base64.b64encode(b'{"locked": false}').decode()}]}
    for role in ("operator", "auditor"):
        r = await api.post("/codec/encode", json=body, headers=bearer(api_keys[role][1]))
        assert r.status_code == 403


async def test_a_codec_session_cookie_works_for_the_codec_routes_only(api, client, settings, run_worker,
                                                                      scripted_pool, api_keys):
    body = {"payloads": [await sealed_input(client, settings, run_worker, scripted_pool)]}
    r = await api.post("/codec/session", headers=bearer(api_keys["auditor"][1]))
    assert r.status_code == 204
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/codec" in cookie
    # The browser (the Web UI) now decodes with the cookie alone...
    assert (await api.post("/codec/decode", json=body)).status_code == 200
    # ...and the cookie opens nothing else.
    api.cookies.set("hybrid_codec", api_keys["auditor"][1])
    assert (await api.get("/v1/approvals")).status_code == 401  # an auditor may list them with the key


async def test_cors_admits_the_temporal_ui_origin_only(api, settings, api_keys):
    ui = UI
    pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-namespace"}
    ok = await api.options("/codec/decode", headers={"Origin": ui, **pre})
    assert ok.headers.get("access-control-allow-origin") == ui
    assert ok.headers.get("access-control-allow-credentials") == "true"
    evil = await api.options("/codec/decode", headers={"Origin": "http://evil.example", **pre})
    assert evil.headers.get("access-control-allow-origin") is None


def test_the_session_keyring_is_the_clients(client, codec_keyring):
    assert keyring_of(client) == codec_keyring
