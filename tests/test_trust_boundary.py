"""Temporal is no way around the platform: attacks by a program that knows only the Temporal address.

The attacker uses a raw temporalio client (the default data converter, no codec key) and its own worker on its own
task queue, exactly as anyone who can reach the frontend could. Each attack must leave no trace: no file written,
no lockdown state changed, no sandbox run, no request answered, no signal applied. Before the payload codec
(hybrid_llm/codec.py) each of these succeeded.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.worker import Worker

from activities.lockdown_store import LockdownStore
from domain.requests import Progress
from hybrid_llm.codec import Keyring, SealingCodec
from hybrid_llm.temporal import PayloadReader, keyring_of
from tests.conftest import scripted
from tests.helpers import ask, ask_and_wait


@workflow.defn(name="ForeignWorkflow", sandboxed=False)
class ForeignWorkflow:
    """The attacker's workflow: schedules one of OUR activities on OUR task queue with an input it chose."""

    @workflow.run
    async def run(self, args: dict) -> str:
        arg = args.get("input")
        if "raw" in args:  # a payload copied from our history, passed on untouched
            payload = Payload()
            payload.ParseFromString(base64.b64decode(args["raw"]))
            arg = RawValue(payload)
        try:
            await workflow.execute_activity(args["activity"], arg, task_queue=args["queue"],
                                            start_to_close_timeout=timedelta(seconds=20),
                                            retry_policy=RetryPolicy(maximum_attempts=1))
        except ActivityError as e:
            return f"refused: {e.cause}"
        return "ran"


async def attacker(client: Client) -> Client:
    """A client of the same server with the default converter: no key, no plugin."""
    return await Client.connect(client.service_client.config.target_host, namespace=client.namespace)


async def run_foreign(attacker_client: Client, activity: str, our_queue: str, **arg) -> str:
    """Run the attack; returns why our worker refused (read with OUR key: the attacker sees only 'Encoded
    failure'), or 'ran'."""
    queue = f"attacker-{uuid.uuid4().hex[:8]}"
    wid = f"foreign-{uuid.uuid4().hex[:8]}"
    async with Worker(attacker_client, task_queue=queue, workflows=[ForeignWorkflow]):
        outcome = await attacker_client.execute_workflow(ForeignWorkflow.run, {"activity": activity, "queue": our_queue, **arg},
                                             id=wid, task_queue=queue, execution_timeout=timedelta(seconds=60))
    if outcome == "ran":
        return outcome
    assert outcome == "refused: Encoded failure", outcome  # the attacker cannot even read why
    history = await attacker_client.get_workflow_handle(wid).fetch_history()
    failure = next(e.activity_task_failed_event_attributes.failure for e in history.events
                   if e.HasField("activity_task_failed_event_attributes"))
    return "refused: " + PayloadReader(OUR_KEYRING[0]).value(failure.encoded_attributes)["message"]


OUR_KEYRING: list[Keyring] = []


@pytest.fixture(autouse=True)
def _our_keyring(codec_keyring):
    OUR_KEYRING[:] = [codec_keyring]


async def test_a_foreign_workflow_cannot_make_our_worker_write_a_file(client, settings, run_worker, scripted_pool):
    raw = await attacker(client)
    target = settings.root / "downloads" / "forged.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    async with run_worker(scripted_pool()):
        outcome = await run_foreign(raw, "files.write", settings.task_queue, input={
            "actor": "system", "operation": "write", "path": "downloads/forged.txt", "content": "pwned"})
    assert outcome == "refused: Failed decoding arguments"
    assert not target.exists()


async def test_a_foreign_workflow_cannot_unlock_through_lockdown_persist(client, settings, run_worker,
                                                                          scripted_pool, engine):
    store = LockdownStore(engine, scope=settings.task_queue)
    from domain.lockdown import LockdownState, Trigger

    store.write(LockdownState(locked=True, epoch=7, reason="test", trigger=Trigger.PANIC, actor="test"))
    raw = await attacker(client)
    try:
        async with run_worker(scripted_pool()):
            outcome = await run_foreign(raw, "lockdown.persist", settings.task_queue,
                                        input={"locked": False, "epoch": 8})
        state = store.read()
    finally:  # the session's database is shared: leave no deployment locked behind
        store.write(LockdownState(locked=False, epoch=9))
    assert outcome == "refused: Failed decoding arguments"
    assert state.locked and state.epoch == 7


async def test_a_foreign_workflow_cannot_run_a_sandbox(client, settings, run_worker, scripted_pool):
    raw = await attacker(client)
    marker = settings.root / "downloads" / "sandbox-ran.txt"
    async with run_worker(scripted_pool()):
        outcome = await run_foreign(raw, "sandbox.execute", settings.task_queue, input={
            "sandbox_id": "forged1", "backend": "namespace", "argv": ["sh", "-c", f"touch {marker}"]})
    assert outcome == "refused: Failed decoding arguments"
    assert not marker.exists()


async def test_a_sealed_payload_copied_into_another_workflow_is_refused(client, settings, run_worker, scripted_pool):
    """The attacker can read our histories; a sealed activity input copied from one of them into its own workflow
    (another workflow id) does not open."""
    settings.local_call_max_ms = 0  # the call is an activity, so its sealed input is in history to copy
    async with run_worker(scripted_pool(scripted("echo"))):
        handle, _ = await ask_and_wait(client, settings, "hello")
        history = await handle.fetch_history()
        sealed = next(e.activity_task_scheduled_event_attributes.input.payloads[0] for e in history.events
                      if e.HasField("activity_task_scheduled_event_attributes")
                      and e.activity_task_scheduled_event_attributes.activity_type.name == "llm.complete")
        outcome = await run_foreign(await attacker(client), "llm.complete", settings.task_queue,
                                    raw=base64.b64encode(sealed.SerializeToString()).decode())
    assert outcome == "refused: Failed decoding arguments"


async def test_request_workflow_started_with_the_default_converter_never_runs(client, settings, run_worker,
                                                                             scripted_pool):
    raw = await attacker(client)
    wid = f"request-forged-{uuid.uuid4().hex[:8]}"
    async with run_worker(scripted_pool(scripted("echo"))):
        handle = await raw.start_workflow(
            "RequestWorkflow", {"request": {"request_id": wid[8:], "prompt": "hello"}}, id=wid,
            task_queue=settings.task_queue, execution_timeout=timedelta(seconds=60))
        await asyncio.sleep(3)  # several workflow task attempts
        desc = await handle.describe()
        history = await handle.fetch_history()
        await handle.terminate("test over")
    kinds = {e.event_type for e in history.events}
    assert desc.status == WorkflowExecutionStatus.RUNNING  # its workflow task never completes
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED in kinds
    assert not kinds & {EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, EventType.EVENT_TYPE_MARKER_RECORDED,
                        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED}


async def test_a_forged_lockdown_signal_is_dropped_and_the_request_completes(client, settings, run_worker,
                                                                            scripted_pool):
    raw = await attacker(client)
    async with run_worker(scripted_pool(scripted("slow", delay_ms=1500))):
        handle = await ask(client, settings, "hello")
        await asyncio.sleep(0.5)
        await raw.get_workflow_handle(handle.id).signal("lockdown", {"locked": True, "epoch": 10**12,
                                                                     "reason": "forged"})
        await asyncio.sleep(0.3)
        progress = await handle.query("progress", result_type=Progress)
        result = await handle.result()
    assert progress.stage != "paused"
    assert result.answer
    history = await handle.fetch_history()
    signals = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]
    assert signals  # it reached history, and was refused there: the workflow went on
    assert not any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED for e in history.events)


async def test_a_raw_client_reads_no_prompt_or_answer_from_history(client, settings, run_worker, scripted_pool):
    async with run_worker(scripted_pool(scripted("echo"))):
        handle, result = await ask_and_wait(client, settings, "the secret plan is pineapple")
    raw_history = await (await attacker(client)).get_workflow_handle(handle.id).fetch_history()
    assert b"pineapple" not in raw_history.to_json().encode()
    # ...while the deployment's key opens it (the codec endpoint and `audit show` use this).
    reader = PayloadReader(keyring_of(client))
    started = raw_history.events[0].workflow_execution_started_event_attributes
    assert "pineapple" in reader.value(started.input.payloads[0])["request"]["prompt"]


async def test_payloads_sealed_under_another_key_are_refused(codec_keyring):
    from hybrid_llm.codec import REFUSED_ENCODING

    theirs = SealingCodec(Keyring.generate("tests"))  # same key id, other key
    forged = (await theirs.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"x"')]))[0]
    ours = SealingCodec(codec_keyring)
    assert (await ours.decode([forged]))[0].metadata["encoding"] == REFUSED_ENCODING
    tampered = (await ours.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"x"')]))[0]
    tampered.data = tampered.data[:-1] + bytes([tampered.data[-1] ^ 1])
    assert (await ours.decode([tampered]))[0].metadata["encoding"] == REFUSED_ENCODING
    with pytest.raises(ValueError):
        ours.unseal(tampered)


async def test_audit_names_who_asked_and_who_approved(client, settings, run_worker, scripted_pool, tmp_path):
    from domain.approvals import ApprovalVerdict
    from domain.permissions import Actor, Operation, PermissionRequest
    from hybrid_llm import permission_client
    from hybrid_llm.audit import timeline
    from tests.helpers import TEST_APPROVER, TEST_USER

    policy = tmp_path / "policy.toml"
    policy.write_text('[model]\nrules = []\n[model.unmatched]\nwrite = "ask"\n')  # a person decides every write
    settings.permissions_file = policy
    (settings.root / "downloads").mkdir(parents=True, exist_ok=True)
    ask_write = PermissionRequest(actor=Actor.MODEL, operation=Operation.WRITE, model_id="echo",
                                  path="downloads/audited.txt", explanation="audit test")
    async with run_worker(scripted_pool()):
        inp = permission_client.permission_input(settings, ask_write, "audited").model_copy(
            update={"requester": TEST_USER})
        handle = await client.start_workflow("PermissionWorkflow", inp, id=f"permission-{uuid.uuid4().hex}",
                                             task_queue=settings.task_queue)
        while not await permission_client.pending(client, settings):
            await asyncio.sleep(0.2)
        await permission_client.decide(client, handle.id, ApprovalVerdict(approve=True, by="x",
                                                                           principal=TEST_APPROVER))
        await handle.result()
    t = await timeline.show(client, handle.id)
    assert t["asked_by"]["id"] == TEST_USER.id and t["asked_by"]["roles"] == ["user"]
    decided = [e for e in t["entries"] if e["kind"] == "update"]
    assert decided and decided[0]["by"]["id"] == TEST_APPROVER.id and decided[0]["by"]["name"] == "test approver"
    assert (settings.root / "downloads" / "audited.txt").read_text() == "audited"


def _ask_for_every_write(settings, tmp_path) -> None:
    """The worker's policy (set before the worker starts): a person decides every model write."""
    policy = tmp_path / "policy.toml"
    policy.write_text('[model]\nrules = []\n[model.unmatched]\nwrite = "ask"\n')
    settings.permissions_file = policy
    (settings.root / "downloads").mkdir(parents=True, exist_ok=True)


async def _waiting_write(client, settings, requester, name: str):
    from domain.permissions import Actor, Operation, PermissionRequest
    from hybrid_llm import permission_client

    ask_write = PermissionRequest(actor=Actor.MODEL, operation=Operation.WRITE, model_id="echo",
                                  path=f"downloads/{name}", explanation="four eyes test")
    inp = permission_client.permission_input(settings, ask_write, "content").model_copy(
        update={"requester": requester})
    handle = await client.start_workflow("PermissionWorkflow", inp, id=f"permission-{uuid.uuid4().hex}",
                                         task_queue=settings.task_queue)
    while not any(p.workflow_id == handle.id for p in await permission_client.pending(client, settings)):
        await asyncio.sleep(0.2)
    return handle


async def test_the_requester_cannot_approve_their_own_request(client, settings, run_worker, scripted_pool,
                                                             tmp_path):
    from domain.approvals import ApprovalVerdict
    from domain.principals import AccessRole, Principal
    from hybrid_llm import permission_client

    both = Principal(id="alice", name="alice", roles=(AccessRole.USER, AccessRole.APPROVER))
    _ask_for_every_write(settings, tmp_path)
    async with run_worker(scripted_pool()):
        handle = await _waiting_write(client, settings, both, "self.txt")
        with pytest.raises(permission_client.ApprovalForbidden, match="four eyes"):
            await permission_client.decide(client, handle.id, ApprovalVerdict(approve=True, by="alice",
                                                                               principal=both))
        user_only = Principal(id="bob", name="bob", roles=(AccessRole.USER,))
        with pytest.raises(permission_client.ApprovalForbidden, match="approver role"):
            await permission_client.decide(client, handle.id, ApprovalVerdict(approve=True, by="bob",
                                                                               principal=user_only))
        with pytest.raises(permission_client.ApprovalForbidden, match="authenticated"):
            await permission_client.decide(client, handle.id, ApprovalVerdict(approve=True, by="anonymous"))
        # Still waiting: none of the refused decisions reached the workflow's history.
        assert any(p.workflow_id == handle.id for p in await permission_client.pending(client, settings))
        await handle.terminate("test over")
    assert not (settings.root / "downloads" / "self.txt").exists()


async def test_an_approval_is_bound_used_once_and_expires(engine):
    """The acting step checks the binding: another workflow, other arguments, a changed policy, a second use or an
    expired approval are refused."""
    from datetime import datetime, timedelta, timezone

    from activities.approvals import ApprovalGrantRow, ApprovalRefused, ApprovalStore
    from domain.approvals import GrantRequest
    from sqlalchemy.orm import Session
    from tests.helpers import TEST_APPROVER

    store = ApprovalStore(engine)
    digest = "a" * 64
    grant = store.grant(GrantRequest(workflow_id="wf-1", operation_sha256=digest, policy_version="p1",
                                     approver=TEST_APPROVER, ttl_s=60))
    use = dict(workflow_id="wf-1", operation_sha256=digest, policy_version="p1")
    for wrong, why in ((dict(use, workflow_id="wf-2"), "another workflow"),
                       (dict(use, operation_sha256="b" * 64), "another operation"),
                       (dict(use, policy_version="p2"), "policy changed")):
        with pytest.raises(ApprovalRefused, match=why):
            store.consume(grant.approval_id, caller="run/1", **wrong)
    row = store.consume(grant.approval_id, caller="run/1", **use)
    assert row.approver_id == TEST_APPROVER.id
    assert store.consume(grant.approval_id, caller="run/1", **use)  # the same call, retried: fine
    with pytest.raises(ApprovalRefused, match="already used"):
        store.consume(grant.approval_id, caller="run/2", **use)
    late = store.grant(GrantRequest(workflow_id="wf-1", operation_sha256=digest, policy_version="p1",
                                    approver=TEST_APPROVER, ttl_s=60))
    with Session(engine) as s, s.begin():
        s.get(ApprovalGrantRow, late.approval_id).expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
    with pytest.raises(ApprovalRefused, match="expired"):
        store.consume(late.approval_id, caller="run/3", **use)


async def test_codec_rotation_keeps_old_histories_readable(settings, tmp_path):
    """`codec rotate`: a new active key seals; the old one still opens what it sealed."""
    from temporalio.api.common.v1 import Payload as P

    from hybrid_llm.codec import Keyring, read_keyring, write_keyring
    from tests.processes import acli

    settings.codec_keys_file = tmp_path / "ring.json"
    old = Keyring.generate("old")
    write_keyring(settings.codec_keys_file, old, exclusive=True)
    sealed_before = SealingCodec(old).seal(P(metadata={"encoding": b"json/plain"}, data=b'"before"'))
    out = await acli(settings, "codec", "rotate", "--json")
    assert out.returncode == 0, out.stderr
    ring = read_keyring(settings.codec_keys_file)
    assert ring.active != "old" and set(ring.keys) == {"old", ring.active}
    assert settings.codec_keys_file.stat().st_mode & 0o777 == 0o600
    codec = SealingCodec(ring)
    assert codec.unseal(sealed_before).data == b'"before"'
    assert codec.seal(P(metadata={}, data=b"x")).metadata["key-id"] == ring.active.encode()
