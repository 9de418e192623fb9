"""Per-key limits and scoped reads over HTTP (real PostgreSQL keys, real Temporal, a real worker with scripted
models): model allowlist 403, requests per minute 429, daily token budget 429 (spend recorded by the LLM
activity), `GET /v1/usage`, a user cannot read or take over another user's request, and body caps that hold
against a lying Content-Length and a chunked body."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from activities.keys_store import KeyStore
from domain.principals import AccessRole
from tests.conftest import bearer, scripted
from tests.test_api import api, api_client, wait_until_closed  # noqa: F401 - the fixture


def _key(engine, **limits) -> tuple:
    record, key = KeyStore(engine).create(f"limits-{uuid.uuid4().hex[:6]}", (AccessRole.USER,), **limits)
    return record, key


async def test_model_allowlist_refuses_other_models(api, engine):  # noqa: F811
    _, key = _key(engine, models=("echo",))
    refused = await api.post("/v1/requests", json={"prompt": "hi", "model": "coder"}, headers=bearer(key))
    assert refused.status_code == 403 and "'coder'" in refused.json()["message"]
    allowed = await api.post("/v1/requests", json={"prompt": "hi", "model": "echo"}, headers=bearer(key))
    assert allowed.status_code == 202, allowed.text


async def test_requests_per_minute_answer_429_with_retry_after(api, engine):  # noqa: F811
    _, key = _key(engine, rpm=2)
    if datetime.now(UTC).second >= 55:  # keep the three calls inside one minute window
        await asyncio.sleep(61 - datetime.now(UTC).second)
    codes = [(await api.post("/v1/requests", json={"prompt": "hi"}, headers=bearer(key))) for _ in range(3)]
    assert [r.status_code for r in codes] == [202, 202, 429], [r.text for r in codes]
    assert 1 <= int(codes[2].headers["retry-after"]) <= 60
    assert "2 requests per minute" in codes[2].json()["message"]
    # Another key is not affected.
    assert (await api.post("/v1/requests", json={"prompt": "hi"})).status_code == 202


async def test_daily_token_budget_rolls_up_spend_and_answers_429(api, engine, run_worker, scripted_pool,  # noqa: F811
                                                                 api_keys):
    record, key = _key(engine, daily_tokens=5)
    async with run_worker(scripted_pool(scripted("echo", reply="one two three four"))):
        first = await api.post("/v1/requests", json={"prompt": "count please"}, headers=bearer(key))
        assert first.status_code == 202, first.text
        api.headers.update(bearer(key))
        done = await wait_until_closed(api, first.json()["request_id"])
        assert done["status"] == "completed", done
        second = await api.post("/v1/requests", json={"prompt": "and again"}, headers=bearer(key))
    assert second.status_code == 429, second.text
    assert "daily token budget" in second.json()["message"] and int(second.headers["retry-after"]) >= 1

    usage = (await api.get("/v1/usage", headers=bearer(key))).json()
    used = done["result"]["usage"]
    assert usage["total_tokens"] == used["prompt_tokens"] + used["completion_tokens"] > 5
    assert [(line["principal_id"], line["model_id"], line["calls"]) for line in usage["lines"]] == \
        [(record.id, "echo", 1)]
    # Everyone's usage: auditors and operators only.
    assert (await api.get("/v1/usage", params={"all": "true"}, headers=bearer(key))).status_code == 403
    everyone = await api.get("/v1/usage", params={"all": "true"}, headers=bearer(api_keys["auditor"][1]))
    assert everyone.status_code == 200 and record.id in {x["principal_id"] for x in everyone.json()["lines"]}


async def test_a_user_cannot_read_or_take_over_another_users_request(api, api_keys):  # noqa: F811
    request_id = f"mine-{uuid.uuid4().hex[:8]}"
    user, user2, auditor = (api_keys[k][1] for k in ("user", "user2", "auditor"))
    started = await api.post("/v1/requests", json={"prompt": "private", "request_id": request_id},
                             headers=bearer(user))
    assert started.status_code == 202
    assert (await api.get(f"/v1/requests/{request_id}", headers=bearer(user))).status_code == 200
    other = await api.get(f"/v1/requests/{request_id}", headers=bearer(user2))
    assert other.status_code == 404 and "private" not in other.text
    assert (await api.get(f"/v1/requests/{request_id}", headers=bearer(auditor))).status_code == 200
    # Re-using the id (idempotency key) does not hand user2 the workflow.
    taken = await api.post("/v1/requests", json={"prompt": "mine now", "request_id": request_id},
                           headers=bearer(user2))
    assert taken.status_code == 409


@pytest.mark.parametrize("how", ["lying-content-length", "chunked"])
async def test_body_cap_is_enforced_while_reading(settings, api_keys, how):
    settings.max_body_bytes = 4096
    body = b'{"prompt": "' + b"x" * 20_000 + b'"}'
    async with api_client(settings, api_keys["user"][1]) as http:
        if how == "chunked":
            async def chunks():
                for i in range(0, len(body), 1000):
                    yield body[i:i + 1000]
            r = await http.post("/v1/requests", content=chunks(), headers={"content-type": "application/json"})
        else:
            request = http.build_request("POST", "/v1/requests", content=body,
                                         headers={"content-type": "application/json"})
            request.headers["content-length"] = "100"
            r = await http.send(request)
        assert r.status_code == 413, r.text
        assert "4,096 bytes" in r.json()["message"]
        honest = await http.post("/v1/requests", content=body, headers={"content-type": "application/json"})
        assert honest.status_code == 413


async def test_usage_rolls_up_delegations_under_the_requester(api, engine, run_worker, scripted_pool):  # noqa: F811
    from tests.test_delegation import CHANGES_THEN_APPROVE, PROMPT, team

    record, key = _key(engine, daily_tokens=1_000_000)
    api.headers.update(bearer(key))
    async with run_worker(scripted_pool(*team(CHANGES_THEN_APPROVE))):
        started = await api.post("/v1/requests", json={"prompt": PROMPT})
        assert started.status_code == 202, started.text
        done = await wait_until_closed(api, started.json()["request_id"])
    assert done["status"] == "completed" and len(done["result"]["delegations"]) == 3
    usage = (await api.get("/v1/usage")).json()
    calls = {line["model_id"]: line["calls"] for line in usage["lines"]}
    assert calls == {"generalist": 1, "coder": 2, "reviewer": 2}, usage
    assert {line["principal_id"] for line in usage["lines"]} == {record.id}
    rolled = done["result"]["usage"]
    assert usage["total_tokens"] >= rolled["completion_tokens"] > 20


async def test_sandbox_runs_are_scoped_to_who_started_them(api, settings, api_keys, run_worker,  # noqa: F811
                                                          scripted_pool, tmp_path):
    import os
    from pathlib import Path

    for name in ("downloads", "uploads", "rag"):
        (settings.root / name).mkdir(parents=True, exist_ok=True)
    settings.sandbox_dir = Path("/var/tmp/hybrid-llm-sandboxes") / f"test-{tmp_path.name}-{os.getpid()}"
    user, user2, approver = (bearer(api_keys[k][1]) for k in ("user", "user2", "approver"))
    async with run_worker(scripted_pool()):
        started = await api.post("/v1/sandboxes", json={"command": ["/bin/echo", "secret output"]}, headers=user)
        assert started.status_code == 202, started.text
        wid = started.json()["workflow_id"]
        for _ in range(300):  # until it waits for its review
            shown = await api.get(f"/v1/sandboxes/{wid}", headers=user)
            if (shown.json().get("view") or {}).get("step") == "reviewing":
                break
            await asyncio.sleep(0.1)
        assert shown.status_code == 200
        ids = lambda r: {i["workflow_id"] for i in r.json()}  # noqa: E731
        assert wid in ids(await api.get("/v1/sandboxes", headers=user))
        assert wid not in ids(await api.get("/v1/sandboxes", headers=user2))
        other = await api.get(f"/v1/sandboxes/{wid}", headers=user2)
        assert other.status_code == 404 and "secret output" not in other.text
        assert wid in ids(await api.get("/v1/sandboxes", headers=approver))  # it waits for a reviewer
        assert (await api.post(f"/v1/sandboxes/{wid}/decision", json={"approve": False},
                               headers=user)).status_code == 403
        rejected = await api.post(f"/v1/sandboxes/{wid}/decision", json={"approve": False}, headers=approver)
        assert rejected.status_code == 200, rejected.text


async def test_the_api_stamps_the_authenticated_principal_on_the_workflow(api, client, api_keys):  # noqa: F811
    forged = {"id": "someone-else", "name": "boss", "roles": ["operator"], "kind": "key"}
    refused = await api.post("/v1/requests", json={"prompt": "hi", "principal": forged})
    assert refused.status_code == 422  # a body never names who asks
    started = await api.post("/v1/requests", json={"prompt": "hi"})
    assert started.status_code == 202
    history = await client.get_workflow_handle(started.json()["workflow_id"]).fetch_history()
    payloads = list(history.events[0].workflow_execution_started_event_attributes.input.payloads)
    (inp,) = await client.data_converter.decode(payloads)
    user = api_keys["user"][0]
    assert inp["principal"]["id"] == user.id and inp["principal"]["roles"] == ["user"]


async def test_the_router_picks_only_allowed_models(api, engine, run_worker, scripted_pool, api_keys):  # noqa: F811
    _, only_echo = _key(engine, models=("echo",))
    _, only_missing = _key(engine, models=("not-in-the-pool",))
    # The router ranks local before cloud: without an allowlist it always picks the local "other".
    pool = scripted_pool(scripted("other", reply="from other"), scripted("echo", reply="from echo", local=False))
    async with run_worker(pool):
        results = {}
        for who, key in (("free", api_keys["user"][1]), ("echo", only_echo), ("none", only_missing)):
            started = await api.post("/v1/requests", json={"prompt": "hello"}, headers=bearer(key))
            assert started.status_code == 202, started.text
            api.headers.update(bearer(key))
            results[who] = await wait_until_closed(api, started.json()["request_id"])
    assert results["free"]["result"]["model"] == "other"  # what the router picks without an allowlist
    assert results["echo"]["result"]["model"] == "echo" and results["echo"]["result"]["answer"] == "from echo"
    assert results["none"]["status"] == "failed" and results["none"]["error"]["type"] == "NoModelAvailable"
    assert "allowlist" in results["none"]["error"]["message"]


async def test_a_caller_chosen_id_cannot_take_over_a_workflow_started_elsewhere(api, client, settings):  # noqa: F811
    """The local CLI starts requests through Temporal (no owner row); an API user who names the same request id
    must not become its owner and read its answer."""
    from domain.requests import UserRequest
    from hybrid_llm.identity import local_principal
    from hybrid_llm.request_client import start_request

    request_id = f"nightly-{uuid.uuid4().hex[:8]}"
    await start_request(client, settings, UserRequest(request_id=request_id, prompt="the operator's secret report"),
                        principal=local_principal(settings))
    taken = await api.post("/v1/requests", json={"prompt": "mine now", "request_id": request_id})
    assert taken.status_code == 409, taken.text
    assert (await api.get(f"/v1/requests/{request_id}")).status_code == 404
    again = await api.post("/v1/requests", json={"prompt": "mine now", "request_id": request_id})
    assert again.status_code == 409  # the refused claim left nothing behind to reuse
