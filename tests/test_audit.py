"""Audit on real Temporal + PostgreSQL: blob store, timelines (`audit show`), history size, replay verification
(`audit verify`, `audit export`), and a deliberately changed workflow failing verification."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from temporalio import workflow

from activities.blobs import BlobNotFound, BlobStore
from domain.blobs import messages_bytes, sha256_of
from domain.requests import ChatMessage
from hybrid_llm.audit import replay, timeline
from hybrid_llm.temporal import PayloadReader, keyring_of
from tests.conftest import scripted
from tests.helpers import ask_and_wait, model_calls
from tests.processes import acli
from workflows.request import RequestWorkflow


def history_kb(history) -> float:
    return len(history.to_json().encode()) / 1024


def test_blob_store_round_trip(engine):
    store = BlobStore(engine)
    text = "große Antwort " * 1000
    sha = store.put_text(text)
    assert sha == sha256_of(text.encode()) and store.get_text(sha) == text
    assert store.put_text(text) == sha  # idempotent: same content, same row
    msgs = [ChatMessage(role="system", content="be brief"), ChatMessage(role="user", content="x" * 5000)]
    ref = store.put_messages(msgs)
    assert ref == sha256_of(messages_bytes(msgs)) and store.get_messages(ref) == msgs
    assert set(store.get_many([sha, ref, "0" * 64])) == {sha, ref}
    with pytest.raises(BlobNotFound):
        store.get("f" * 64)


async def test_audit_show_on_a_real_run_with_a_fallback(client, settings, run_worker, scripted_pool):
    pool = scripted_pool(scripted("flaky", fail="permanent"), scripted("steady", local=False, reply="ok: {prompt}"))
    async with run_worker(pool):
        handle, result = await ask_and_wait(client, settings, "What is durable execution?")
        t = await timeline.show(client, handle.id)
        cli = await acli(settings, "audit", "show", handle.id, "--json")
        text = await acli(settings, "audit", "show", handle.id)
    assert result.model == "steady"
    kinds = [e["kind"] for e in t["entries"]]
    assert kinds[0] == "started" and kinds[-1] == "completed" and t["status"] == "completed"
    assert "input_scan" in kinds and "model_cooled_down" in kinds
    routing = [e for e in t["entries"] if e["kind"] == "routing"]
    assert [r["chosen"] for r in routing] == ["flaky", "steady"]
    assert any("chose flaky" in reason for reason in routing[0]["reasons"])
    failed = next(e for e in t["entries"] if e["kind"] == "model_call_failed")
    assert failed["model"] == "flaky" and "scripted permanent failure" in failed["message"]
    call = next(e for e in t["entries"] if e["kind"] == "model_call")
    msgs = [ChatMessage(role="system", content="You are a helpful, concise assistant."),
            ChatMessage(role="user", content="What is durable execution?")]
    assert call["model"] == "steady" and call["prompt_sha256"] == sha256_of(messages_bytes(msgs))
    assert call["output_sha256"] == sha256_of(result.answer.encode())
    assert call["prompt_tokens"] == result.usage.prompt_tokens > 0
    assert call["completion_tokens"] == result.usage.completion_tokens > 0
    assert failed["prompt_sha256"] == call["prompt_sha256"]  # the same prompt went to both models
    assert t["result"]["answer_sha256"] == call["output_sha256"]
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["entries"][-1]["kind"] == "completed"
    assert text.returncode == 0 and "chose steady" in text.stdout and "model_call" in text.stdout


async def test_large_prompts_and_outputs_go_by_hash_and_full_shows_what_the_model_saw(
        client, settings, run_worker, scripted_pool, engine):
    prompt = "Summarise this log:\n" + "\n".join(f"line {i}: worker heartbeat ok, queue depth {i % 7}"
                                                  for i in range(600))  # ~25 KB, 4 KB is the threshold
    pool = scripted_pool(scripted("flaky", fail="permanent"),
                         scripted("steady", local=False, reply="Summary: {prompt}"))  # echoes: a long answer
    async with run_worker(pool):
        handle, result = await ask_and_wait(client, settings, prompt, max_tokens=1200)
        history = await handle.fetch_history()
        t = await timeline.show(client, handle.id, full=True, blobs=BlobStore(engine))
        cli = await acli(settings, "audit", "show", handle.id, "--full", "--json")
    assert result.answer.startswith("Summary: Summarise this log:") and len(result.answer) > 4096  # in full
    inputs = [call["input"] for call in model_calls(history, PayloadReader(keyring_of(client)))]
    assert len(inputs) == 2 and all(i["messages"] == [] and len(i["messages_ref"]) == 64 for i in inputs)
    # The prompt is in history once (the workflow's input), not once more per attempt.
    assert history_kb(history) < 100, history_kb(history)
    call = next(e for e in t["entries"] if e["kind"] == "model_call")
    assert call["text_ref"] == call["output_sha256"] == sha256_of(result.answer.encode())
    assert call["messages"][1] == {"role": "user", "content": prompt}  # exactly what the model saw
    assert call["output"] == result.answer
    assert "prompt_stored" in [e["kind"] for e in t["entries"]]
    assert cli.returncode == 0, cli.stderr
    shown = next(e for e in json.loads(cli.stdout)["entries"] if e["kind"] == "model_call")
    assert shown["messages"][1]["content"] == prompt and shown["output"] == result.answer


async def test_a_typical_request_history_is_small(client, settings, run_worker, scripted_pool):
    async with run_worker(scripted_pool(scripted("echo"))):
        handle, _ = await ask_and_wait(client, settings, "Explain idempotency keys in two sentences.")
        history = await handle.fetch_history()
    assert history_kb(history) < 100
    assert len(history.events) < 40


async def test_verify_and_export_replay_real_histories(client, settings, run_worker, scripted_pool, tmp_path):
    pool = scripted_pool(scripted("flaky", fail="permanent"), scripted("steady", local=False))
    async with run_worker(pool):
        handles = [(await ask_and_wait(client, settings, f"question {i}"))[0] for i in range(3)]
        by_id = await acli(settings, "audit", "verify", handles[0].id, "--json")
        scoped = f"TaskQueue = '{settings.task_queue}'"
        every = await acli(settings, "audit", "verify", "--all", "--query", scoped, "--json")
        out = tmp_path / "export"
        exported = await acli(settings, "audit", "export", "--all", "--query", scoped, "--out", str(out), "--json")
        from_dir = await acli(settings, "audit", "verify", "--dir", str(out), "--json")
        one_file = sorted(out.glob("*.json"))[0]
        from_file = await acli(settings, "audit", "verify", "--file", str(one_file), "--json")
    assert by_id.returncode == 0, by_id.stderr
    assert json.loads(by_id.stdout) | {"seconds": 0} == {"replayed": 1, "failed": 0, "failures": [], "seconds": 0}
    assert every.returncode == 0, every.stderr
    assert json.loads(every.stdout)["replayed"] == 3 and json.loads(every.stdout)["failed"] == 0
    assert exported.returncode == 0 and json.loads(exported.stdout)["exported"] == 3
    assert {p.name.split("__")[0] for p in out.glob("*.json")} == {h.id for h in handles}
    assert json.loads(from_dir.stdout)["replayed"] == 3 and json.loads(from_dir.stdout)["failed"] == 0
    assert json.loads(from_file.stdout)["replayed"] == 1 and from_file.returncode == 0


@workflow.defn(name="RequestWorkflow", sandboxed=False)
class ChangedRequestWorkflow(RequestWorkflow):
    """RequestWorkflow with one extra activity first: not what the recorded histories did."""

    @workflow.run
    async def run(self, raw: dict[str, Any]) -> object:  # the parameters of RequestWorkflow's @workflow.init
        await workflow.execute_activity("audit.extra_step", start_to_close_timeout=timedelta(seconds=5))
        return await super().run(raw)


async def test_a_changed_workflow_fails_verification_naming_the_workflow(client, settings, run_worker,
                                                                          scripted_pool, tmp_path):
    async with run_worker(scripted_pool()):
        handle, _ = await ask_and_wait(client, settings, "hello")
    history = await handle.fetch_history()
    first = await replay.verify([history], keyring=keyring_of(client))
    assert first["failed"] == 0, first
    result = await replay.verify([history], workflows=[ChangedRequestWorkflow], keyring=keyring_of(client))
    assert result["failed"] == 1
    failure = result["failures"][0]
    assert failure["workflow_id"] == handle.id and failure["workflow_type"] == "RequestWorkflow"
    assert "NondeterminismError" in failure["error"] and "TMPRL1100" in failure["error"]
    assert failure["event_id"] == 5  # where the recorded preflight marker meets the new activity
    # The same through files and the CLI, against the real code: passes.
    replay.export([history], tmp_path)
    ok = await acli(settings, "audit", "verify", "--dir", str(tmp_path), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["failed"] == 0
