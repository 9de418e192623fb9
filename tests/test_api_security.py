"""The security endpoints over HTTP (real Temporal, PostgreSQL, worker): lockdown and approvals."""

from __future__ import annotations

import asyncio

from domain.permissions import Actor, Operation, PermissionRequest
from hybrid_llm import permission_client
from hybrid_llm.api.auth import actor_label
from tests.conftest import bearer
from tests.test_api import api  # noqa: F401 - the fixture


async def test_panic_button_and_release_over_http(api, run_worker, scripted_pool, lockdown_secret,  # noqa: F811
                                                  api_keys):
    operator, key = api_keys["operator"]
    api.headers.update(bearer(key))
    async with run_worker(scripted_pool()):
        assert (await api.get("/v1/lockdown")).json()["locked"] is False
        engaged = await api.post("/v1/lockdown/engage", json={"reason": "over http"})
        assert engaged.status_code == 200 and engaged.json()["locked"]
        assert engaged.json()["actor"] == actor_label(operator)
        bad = await api.post("/v1/lockdown/release", json={"secret": "nope"})
        assert bad.status_code == 403 and "WrongSecret" in bad.json()["message"] and "nope" not in bad.text
        too_soon = await api.post("/v1/lockdown/release", json={"secret": lockdown_secret})
        assert too_soon.status_code == 429
        await asyncio.sleep(2.1)
        released = await api.post("/v1/lockdown/release", json={"secret": lockdown_secret})
        assert released.status_code == 200 and released.json()["locked"] is False
        not_locked = await api.post("/v1/lockdown/release", json={"secret": lockdown_secret})
        assert not_locked.status_code == 409
        assert (await api.post("/v1/lockdown/engage", json={})).status_code == 422


async def test_approvals_over_http(api, client, settings, run_worker, scripted_pool, tmp_path,  # noqa: F811
                                   api_keys):
    approver, key = api_keys["approver"]
    api.headers.update(bearer(key))
    policy = tmp_path / "policy.toml"
    policy.write_text('[model]\nrules = []\n[model.unmatched]\nnetwork = "ask"\n')
    settings.permissions_file = policy
    async with run_worker(scripted_pool()):
        handle = await permission_client.request_permission(client, settings, PermissionRequest(
            actor=Actor.MODEL, operation=Operation.NETWORK, model_id="m", host="pypi.org", explanation="deps"))
        for _ in range(100):
            listed = (await api.get("/v1/approvals")).json()
            if listed:
                break
            await asyncio.sleep(0.1)
        assert [item["workflow_id"] for item in listed] == [handle.id]
        assert listed[0]["request"]["host"] == "pypi.org"
        decided = await api.post(f"/v1/approvals/{handle.id}", json={"approve": True})
        assert decided.status_code == 200 and decided.json()["result"] == "approved"
        outcome = await handle.result()
        again = await api.post(f"/v1/approvals/{handle.id}", json={"approve": False})
    assert outcome.decision.decision == "allow" and outcome.decided_by == approver.label  # the principal, not a name from the body
    assert again.status_code == 409


async def test_a_requester_cannot_approve_their_own_request_over_http(api, settings, engine, api_keys,  # noqa: F811
                                                                      run_worker, scripted_pool, tmp_path):
    """Four eyes through the API: a key holding both user and approver starts a request whose save needs a person;
    approving it with the same key is 403, another approver's key decides, and the record names that key."""
    from activities.keys_store import KeyStore
    from domain.principals import AccessRole
    from tests.conftest import scripted
    from tests.test_api import wait_until_closed

    policy = tmp_path / "policy.toml"
    policy.write_text('[model]\nrules = []\n[model.unmatched]\nwrite = "ask"\n')
    settings.permissions_file = policy
    (settings.root / "downloads").mkdir(parents=True, exist_ok=True)
    both, both_key = KeyStore(engine).create("self-approver", (AccessRole.USER, AccessRole.APPROVER))
    approver, approver_key = api_keys["approver"]
    async with run_worker(scripted_pool(scripted("echo", reply="the analysis"))):
        started = await api.post("/v1/requests", json={"prompt": "analyse this", "save_as": "downloads/mine.md"},
                                 headers=bearer(both_key))
        assert started.status_code == 202, started.text
        save_id = f"{started.json()['workflow_id']}-save"
        for _ in range(200):
            listed = (await api.get("/v1/approvals", headers=bearer(both_key))).json()
            if any(item["workflow_id"] == save_id for item in listed):
                break
            await asyncio.sleep(0.1)
        mine = next(item for item in listed if item["workflow_id"] == save_id)
        assert mine["requester"]["id"] == both.id
        own = await api.post(f"/v1/approvals/{save_id}", json={"approve": True}, headers=bearer(both_key))
        assert own.status_code == 403 and "four eyes" in own.json()["message"], own.text
        other = await api.post(f"/v1/approvals/{save_id}", json={"approve": True}, headers=bearer(approver_key))
        assert other.status_code == 200, other.text
        api.headers.update(bearer(both_key))
        done = await wait_until_closed(api, started.json()["request_id"])
    saved = done["result"]["saved"]
    assert saved["wrote"] == "downloads/mine.md" and approver.id in saved["decided_by"]
    assert (settings.root / "downloads" / "mine.md").read_text() == "the analysis"
