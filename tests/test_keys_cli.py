"""`hybrid-llm keys create | list | revoke` as real subprocesses: locally as the operator whose credential `up`
writes to the state folder, and remotely through a real API server (`hybrid-llm serve`) with
HYBRID_API_URL + HYBRID_API_KEY."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from activities.keys_store import KeyRefused, KeyStore
from domain.principals import AccessRole
from hybrid_llm.identity import credential_path, ensure_local_credential, local_principal, CredentialError
from hybrid_llm.stack.procs import free_port
from tests.processes import REPO, cli, env_for


def test_local_operator_credential_and_keys_commands(settings, engine):
    credential_path(settings).unlink()  # the settings fixture wrote one, as `up` does
    refused = cli(settings, "keys", "list")
    assert refused.returncode == 5 and "hybrid-llm up" in refused.stderr, refused.stderr

    path, created = ensure_local_credential(settings, engine)
    assert created and path == credential_path(settings)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert ensure_local_credential(settings, engine) == (path, False)  # `up` again keeps it
    me = local_principal(settings, engine)
    assert me.kind == "local" and set(me.roles) == set(AccessRole)

    made = cli(settings, "keys", "create", "bob", "--role", "user", "--role", "approver", "--models", "echo,coder",
               "--daily-tokens", "1000", "--rpm", "30", "--expires-in", "30d", "--json")
    assert made.returncode == 0, made.stderr
    bob = json.loads(made.stdout)
    assert {"id", "key", "name", "roles"} <= set(bob) and bob["name"] == "bob"
    assert bob["roles"] == ["user", "approver"] and bob["models"] == ["echo", "coder"]
    assert (bob["daily_tokens"], bob["rpm"]) == (1000, 30) and bob["expires_at"]
    store = KeyStore(engine)
    assert store.lookup(bob["key"]).id == bob["id"]

    listed = cli(settings, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    assert rows[bob["id"]]["status"] == "active" and "key" not in rows[bob["id"]]
    assert bob["key"] not in listed.stdout

    store.suspend(bob["id"], "three critical inputs")
    listed = {r["id"]: r for r in json.loads(cli(settings, "keys", "list", "--json").stdout)}
    assert listed[bob["id"]]["status"] == "suspended" and listed[bob["id"]]["suspended_reason"]
    with pytest.raises(KeyRefused):
        store.lookup(bob["key"])
    assert cli(settings, "keys", "resume", bob["id"]).returncode == 0
    assert store.lookup(bob["key"]).id == bob["id"]
    assert cli(settings, "keys", "revoke", bob["id"]).returncode == 0
    with pytest.raises(KeyRefused):
        store.lookup(bob["key"])
    assert cli(settings, "keys", "revoke", "0123456789ab").returncode == 2
    bad = cli(settings, "keys", "create", "x", "--role", "root")
    assert bad.returncode == 2 and "unknown role" in bad.stderr

    # A key without the operator role cannot manage keys; revoking the local key stops the local CLI at once.
    store.revoke(me.id)
    with pytest.raises(CredentialError):
        local_principal(settings, engine)
    after = cli(settings, "keys", "list")
    assert after.returncode == 5 and "refused" in after.stderr
    asked = cli(settings, "ask", "hello")
    assert asked.returncode == 5 and "refused" in asked.stderr


@pytest.fixture
def api_server(settings) -> Iterator[str]:
    port = free_port()
    log = settings.state_dir / "api.log"
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "hybrid_llm.cli.main", "serve", "--port", str(port),
                             "--log-level", "warning"], cwd=REPO, env=env_for(settings),
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_keys_commands_through_the_api(settings, api_server, api_keys, engine):
    operator, user = api_keys["operator"][1], api_keys["user"][1]
    remote = {"HYBRID_API_URL": api_server, "HYBRID_API_KEY": operator}
    made = cli(settings, "keys", "create", "carol", "--role", "auditor", "--expires-in", "1h", "--json", **remote)
    assert made.returncode == 0, made.stderr
    carol = json.loads(made.stdout)
    assert carol["roles"] == ["auditor"] and carol["key"].startswith(f"hlk_{carol['id']}_")
    listed = cli(settings, "keys", "list", "--json", **remote)
    assert listed.returncode == 0 and carol["id"] in {r["id"] for r in json.loads(listed.stdout)}
    assert cli(settings, "keys", "revoke", carol["id"], **remote).returncode == 0
    assert KeyStore(engine).get(carol["id"]).status() == "revoked"

    as_user = cli(settings, "keys", "list", HYBRID_API_URL=api_server, HYBRID_API_KEY=user)
    assert as_user.returncode == 5 and "403" in as_user.stderr
    revoked = cli(settings, "keys", "list", HYBRID_API_URL=api_server, HYBRID_API_KEY=carol["key"])
    assert revoked.returncode == 5 and "401" in revoked.stderr
    half = cli(settings, "keys", "list", HYBRID_API_URL=api_server)
    assert half.returncode == 2 and "HYBRID_API_KEY" in half.stderr


@pytest.mark.timeout(900)  # some twenty CLI processes, each a few seconds on a loaded machine
async def test_cli_commands_go_through_the_api_with_the_key(settings, api_server, api_keys, run_worker,
                                                            scripted_pool, tmp_path, client):
    from tests.conftest import scripted
    from tests.processes import acli

    def as_(who: str) -> dict[str, str]:
        return {"HYBRID_API_URL": api_server, "HYBRID_API_KEY": api_keys[who][1]}

    async with run_worker(scripted_pool(scripted("echo", reply="echo: {prompt}"))):
        asked = await acli(settings, "ask", "hello there", "--json", **as_("user"))
        assert asked.returncode == 0, asked.stderr
        result = json.loads(asked.stdout)
        assert result["answer"] == "echo: hello there" and result["workflow_id"].startswith("request-")
        request_id = result["request_id"]

        mine = await acli(settings, "requests", "status", request_id, "--json", **as_("user"))
        assert mine.returncode == 0 and json.loads(mine.stdout)["status"] == "completed", mine.stderr
        local = await acli(settings, "requests", "status", request_id)  # on this machine, through Temporal
        assert local.returncode == 0 and "echo: hello there" in local.stdout, local.stderr
        # The API stamped the key's principal; the local CLI stamps the local operator's.
        for who, proc in (("user", None), ("local", await acli(settings, "ask", "hi", "--json"))):
            wid = result["workflow_id"] if proc is None else json.loads(proc.stdout)["workflow_id"]
            history = await client.get_workflow_handle(wid).fetch_history()
            (inp,) = await client.data_converter.decode(
                list(history.events[0].workflow_execution_started_event_attributes.input.payloads))
            expected = api_keys["user"][0].id if who == "user" else local_principal(settings).id
            assert (inp["principal"]["id"], inp["principal"]["kind"]) == (expected, "key" if who == "user" else who)
        theirs = await acli(settings, "requests", "status", request_id, **as_("user2"))
        assert theirs.returncode == 2 and "404" in theirs.stderr and "hello" not in theirs.stdout

        state = await acli(settings, "lockdown", "status", "--json", **as_("user"))
        assert state.returncode == 0 and json.loads(state.stdout)["locked"] is False
        engage = await acli(settings, "lockdown", "engage", "--reason", "user tries", **as_("user"))
        assert engage.returncode == 5 and "403" in engage.stderr
        assert (await acli(settings, "approvals", "list", **as_("user"))).returncode == 5
        listed = await acli(settings, "approvals", "list", "--json", **as_("approver"))
        assert listed.returncode == 0 and json.loads(listed.stdout) == []
        boxes = await acli(settings, "sandbox", "list", "--json", **as_("user"))
        assert boxes.returncode == 0 and json.loads(boxes.stdout) == []

        note = tmp_path / "note.md"
        note.write_text("# Note\n\nremote upload\n")
        up = await acli(settings, "upload", str(note), "--as", "remote/note.md", "--json", **as_("user"))
        assert up.returncode == 0, up.stderr
        assert json.loads(up.stdout)["path"] == "uploads/remote/note.md"
        assert (settings.root / "uploads" / "remote" / "note.md").read_text() == note.read_text()
        auditor_upload = await acli(settings, "upload", str(note), **as_("auditor"))
        assert auditor_upload.returncode == 5
        self_approved = await acli(settings, "sandbox", "exec", "--approve", "--", "echo", "hi", **as_("user"))
        assert self_approved.returncode == 5 and "approver" in self_approved.stderr
