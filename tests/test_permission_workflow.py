"""Runtime permission requests on real Temporal + PostgreSQL + a real platform root."""

from __future__ import annotations

import asyncio
import time

import pytest

from domain.approvals import ApprovalVerdict
from domain.lockdown import Trigger
from domain.permissions import Actor, Operation, PermissionRequest
from hybrid_llm import lockdown_client, permission_client
from hybrid_llm.identity import local_principal
from tests.helpers import TEST_APPROVER
from tests.conftest import scripted
from tests.processes import acli


@pytest.fixture
def root(settings):
    for name in ("downloads", "uploads", "rag"):
        (settings.root / name).mkdir(parents=True, exist_ok=True)
    return settings.root


def model_wants(op: Operation, path: str | None = None, host: str | None = None, why: str = "saving results"):
    return PermissionRequest(actor=Actor.MODEL, operation=op, model_id="coder", path=path, host=host,
                             explanation=why)


async def test_an_allowed_write_happens_once_and_is_recorded(client, settings, run_worker, scripted_pool, root):
    async with run_worker(scripted_pool()):
        req = model_wants(Operation.WRITE, "downloads/output.txt", why="saving analysis results")
        first = await (await permission_client.request_permission(client, settings, req, "42\n")).result()
        handle = await permission_client.request_permission(client, settings, req, "42\n")
        again = await handle.result()
    assert first.decision.decision == "allow" and first.decided_by == "policy"
    assert (first.wrote, first.bytes_written) == ("downloads/output.txt", 3)
    assert (root / "downloads" / "output.txt").read_text() == "42\n"
    assert again.bytes_written == 0  # same content: nothing written twice
    assert not [p for p in (root / "downloads").iterdir() if p.name.startswith(".tmp-")]
    desc = await handle.describe()
    assert (await desc.memo_value("decision"))["decision"] == "allow"


async def test_denials_are_counted_and_the_sixth_locks_the_platform_down(client, settings, run_worker,
                                                                         scripted_pool, root, lockdown_secret):
    spellings = ["uploads/notes.txt", "../etc/passwd", "downloads/%2e%2e/uploads/x", "downloads/..\\..\\x",
                 "/etc/shadow", "downloads/\uff0e\uff0e/uploads/y"]
    async with run_worker(scripted_pool()):
        outcomes = []
        for path in spellings:
            handle = await permission_client.request_permission(client, settings, model_wants(Operation.WRITE, path),
                                                                "x")
            outcomes.append(await handle.result())
        state = await lockdown_client.current(client, settings)
        assert [o.decision.decision for o in outcomes] == ["deny"] * 6
        assert [o.failures.total for o in outcomes] == [1, 2, 3, 4, 5, 6]
        assert [o.locked_down for o in outcomes] == [False] * 5 + [True]
        assert state.locked and state.trigger == Trigger.PERMISSION_FAILURES and "6 failed" in state.reason
        # Read-only while locked: even an otherwise allowed write is refused.
        blocked = await (await permission_client.request_permission(
            client, settings, model_wants(Operation.WRITE, "downloads/ok.txt"), "x")).result()
        assert blocked.decision.decision == "deny" and "lockdown" in blocked.decision.reason
        await lockdown_client.release(client, settings, lockdown_secret, actor="pytest")
    assert not list((root / "uploads").iterdir()) and not (root / "downloads" / "ok.txt").exists()


async def test_ask_a_person_waits_across_a_worker_restart(client, settings, run_worker, scripted_pool, root,
                                                          tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[model]\nrules = []\n[model.unmatched]\nnetwork = "ask"\n')
    settings.permissions_file = policy
    async with run_worker(scripted_pool()):
        handle = await permission_client.request_permission(
            client, settings, model_wants(Operation.NETWORK, host="api.example.com", why="fetch the docs"))

        async def waiting():
            return [p for p in await permission_client.pending(client, settings) if p.workflow_id == handle.id]

        deadline = time.monotonic() + 20
        while not await waiting():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    # The worker is gone; the request waits durably. A new worker, then a person approves through the CLI.
    async with run_worker(scripted_pool()):
        listed = await acli(settings, "approvals", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert handle.id in listed.stdout and "api.example.com" in listed.stdout
        approved = await acli(settings, "approvals", "approve", handle.id, "--note", "docs only")
        assert approved.returncode == 0, approved.stderr
        outcome = await asyncio.wait_for(handle.result(), 30)
    assert outcome.decision.decision == "allow" and outcome.decided_by == local_principal(settings).label  # the CLI's principal
    assert "docs only" in outcome.decision.reason
    with pytest.raises(permission_client.ApprovalError):
        await permission_client.decide(client, handle.id, ApprovalVerdict(approve=False, by="late", principal=TEST_APPROVER))


async def test_a_person_can_deny_and_the_denial_counts(client, settings, run_worker, scripted_pool, root, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[model]\nrules = []\n[model.unmatched]\nsandbox = "ask"\n')
    settings.permissions_file = policy
    async with run_worker(scripted_pool()):
        handle = await permission_client.request_permission(client, settings, model_wants(Operation.SANDBOX))
        while not await permission_client.pending(client, settings):
            await asyncio.sleep(0.1)
        await permission_client.decide(client, handle.id, ApprovalVerdict(
            approve=False, by="bob", note="no", principal=TEST_APPROVER))
        outcome = await handle.result()
    assert outcome.decision.decision == "deny" and outcome.decided_by == TEST_APPROVER.label and outcome.failures.total == 1


async def test_a_model_asks_to_save_its_answer_from_the_request_flow(client, settings, run_worker, scripted_pool,
                                                                     root):
    from tests.helpers import ask_and_wait

    async with run_worker(scripted_pool(scripted("echo", reply="the analysis"))):
        handle, ok = await ask_and_wait(client, settings, "analyse this", save_as="downloads/analysis.md")
        _, refused = await ask_and_wait(client, settings, "analyse that", save_as="uploads/analysis.md")
    assert ok.saved.wrote == "downloads/analysis.md" and ok.saved.decided_by == "policy"
    assert (root / "downloads" / "analysis.md").read_text() == "the analysis"
    assert refused.saved.decision.decision == "deny" and refused.saved.wrote is None
    assert not (root / "uploads" / "analysis.md").exists()
    child = await client.get_workflow_handle(f"{handle.id}-save").describe()
    assert child.workflow_type == "PermissionWorkflow"
