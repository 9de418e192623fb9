"""Both plans of a request (one model, or a collaboration of models) end in the same post-steps: every option of
`ask` (--save, --run, --rag, temperature, system) works the same whichever plan answered."""

from __future__ import annotations

import asyncio
import json

import pytest
from temporalio.service import RPCError

from domain.sandbox import ReviewDecision
from hybrid_llm import sandbox_client
from hybrid_llm.temporal import PayloadReader, keyring_of
from tests.conftest import scripted
from tests.helpers import TEST_APPROVER, ask, ask_and_wait, model_calls
from tests.test_rag import folder, upload_and_wait, uploads  # noqa: F401 - fixtures and helpers
from tests.test_rag_request import LIGHTHOUSE
from tests.test_sandbox import root  # noqa: F401 - the fixture

PROMPTS = {"single": "What does the keeper do at night?",
           "collaboration": "Write a secure login API in Python that stores password hashes"}
CODE = "```python\nprint(6 * 7)\n```"


def team():
    return (scripted("generalist", ("general",), reply=f"Here you go:\n{CODE}\n"),
            scripted("coder", ("code",), reply=f"def login(): ...  # hashed\n{CODE}\n"),
            scripted("reviewer", ("security",), reply='{"verdict": "approve", "findings": []}'))


async def completions(handle) -> list[dict]:
    """The inputs of every llm.complete of this workflow, activity or local activity (what each model was sent)."""
    history = await handle.fetch_history()
    return [call["input"] for call in model_calls(history, PayloadReader(keyring_of(handle._client)))]


async def all_completions(client, handle) -> list[dict]:
    """The request's own model calls and those of its delegation hops (child workflows)."""
    calls = await completions(handle)
    for child in (f"{handle.id}-coder", f"{handle.id}-coder-review-1"):
        try:
            calls += await completions(client.get_workflow_handle(child))
        except RPCError:  # no such hop (one model answered)
            pass
    return calls


@pytest.mark.parametrize("plan", ["single", "collaboration"])
async def test_save_works_with_either_plan(client, settings, run_worker, scripted_pool, root, plan):  # noqa: F811
    target = f"downloads/answer-{plan}.md"
    async with run_worker(scripted_pool(*team())):
        _, result = await ask_and_wait(client, settings, PROMPTS[plan], save_as=target)
    assert result.plan == plan
    assert result.saved is not None and result.saved.wrote == target
    assert (settings.root / target).read_text() == result.answer


@pytest.mark.parametrize("plan", ["single", "collaboration"])
async def test_run_works_with_either_plan(client, settings, run_worker, scripted_pool, root, tmp_path,  # noqa: F811
                                          plan):
    policy = tmp_path / "policy.toml"
    policy.write_text('[[model.rules]]\noperations = ["sandbox", "delegate"]\n')
    settings.permissions_file = policy
    async with run_worker(scripted_pool(*team())):
        handle = await ask(client, settings, PROMPTS[plan], run_code=True)
        wid = None
        for _ in range(300):  # the proposed code runs in a sandbox child, then waits for a person's review
            boxes = await sandbox_client.listing(client, settings, running_only=True)
            if boxes and (view := (await sandbox_client.show(client, boxes[0]["workflow_id"])).get("view")) \
                    and view["step"] == "reviewing":
                wid = boxes[0]["workflow_id"]
                break
            await asyncio.sleep(0.1)
        assert wid is not None, "the proposed code never reached review"
        await sandbox_client.decide(client, wid, ReviewDecision(approve=True, by="pytest", principal=TEST_APPROVER))
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.plan == plan
    assert result.sandbox is not None and result.sandbox.status == "approved"
    assert result.sandbox.stdout.strip() == "42"
    assert (await client.get_workflow_handle(wid).describe()).parent_id == handle.id


@pytest.mark.parametrize("plan", ["single", "collaboration"])
async def test_rag_works_with_either_plan(client, settings, run_worker, scripted_pool, embedder, uploads, folder,  # noqa: F811
                                          plan):
    async with run_worker(scripted_pool(*team()), embedder=embedder):
        await upload_and_wait(client, settings, uploads, f"{folder}/harbour.md", LIGHTHOUSE)
        handle, result = await ask_and_wait(client, settings, PROMPTS[plan], rag=True, rag_k=8)
        calls = await all_completions(client, handle)
    assert result.plan == plan
    assert f"uploads/{folder}/harbour.md" in [c["source"] for c in result.citations]
    # Every model that wrote the answer saw the passages it may cite (the coder too, in a collaboration).
    writers = [c for c in calls if c["model_id"] in ("generalist", "coder")]
    assert writers and all("clockwork lens" in json.dumps(c["messages"]) for c in writers)
    if plan == "collaboration":
        assert {c["model_id"] for c in writers} == {"generalist", "coder"}


@pytest.mark.parametrize("plan", ["single", "collaboration"])
async def test_temperature_and_system_reach_every_model(client, settings, run_worker, scripted_pool, plan):
    async with run_worker(scripted_pool(*team())):
        handle, result = await ask_and_wait(client, settings, PROMPTS[plan], temperature=0.9,
                                            system="Always answer in French.", max_tokens=77)
        calls = await all_completions(client, handle)
    assert result.plan == plan
    assert len(calls) == (1 if plan == "single" else 3)  # collaboration: coder, reviewer, generalist formats
    for call in calls:
        assert call["temperature"] == 0.9
        assert "Always answer in French." in call["messages"][0]["content"]
        assert call["max_tokens"] == (77 if call["model_id"] != "reviewer" else 512)  # a verdict's own budget
