"""RequestWorkflow on the real Temporal dev server: routing, fallback, validation, idempotency.

The real local model answers in `test_ask_end_to_end_with_the_real_local_model`; the rest use the
scripted provider because they test orchestration, not the model.
"""

from __future__ import annotations

import uuid

import pytest
from temporalio.api.enums.v1 import RetryState
from temporalio.client import WorkflowFailureError, WorkflowQueryFailedError
from temporalio.exceptions import ApplicationError

from domain.registry import Capability, ModelSpec
from hybrid_llm.request_client import failure_message
from tests.conftest import scripted
from tests.helpers import ask, ask_and_wait, routing_from_history, search_attributes_from_history
from workflows.request import RequestWorkflow


async def test_ask_end_to_end_with_the_real_local_model(client, settings, run_worker, local_pool):
    async with run_worker(local_pool):
        handle, result = await ask_and_wait(client, settings, "What is the capital of France? Answer in one word.",
                                            max_tokens=24)
    assert result.model == "smollm2-135m"
    assert result.provider == "llama_cpp"
    assert result.answer.strip()
    assert result.usage.prompt_tokens > 5 and 0 < result.usage.completion_tokens <= 24
    assert result.timings.inference_ms > 0
    decisions = await routing_from_history(handle)
    assert decisions[0]["chosen"] == "smollm2-135m"
    assert decisions[0]["task_type"] == "general"
    assert any("chose smollm2-135m: local" in r for r in decisions[0]["reasons"])
    assert (await search_attributes_from_history(handle)) == {"TaskType": "general", "Model": "smollm2-135m"}
    desc = await handle.describe()
    assert desc.typed_search_attributes  # visible to list queries and the UI


async def test_code_request_goes_to_the_coder_and_cloud_is_only_a_fallback(client, settings, run_worker,
                                                                            scripted_pool):
    pool = scripted_pool(scripted("generalist", ("general",)), scripted("coder", ("code",)),
                         scripted("cloud-coder", ("code", "general"), local=False))
    async with run_worker(pool):
        _, result = await ask_and_wait(client, settings, "Write a Python function that reverses a linked list")
        _, general = await ask_and_wait(client, settings, "What should I cook tonight?")
    assert (result.model, result.task_type) == ("coder", Capability.CODE)
    assert (general.model, general.task_type) == ("generalist", Capability.GENERAL)


async def test_failing_model_falls_back_and_cools_down(client, settings, run_worker, scripted_pool):
    pool = scripted_pool(scripted("flaky", fail="permanent"), scripted("steady", local=False, reply="ok"))
    async with run_worker(pool):
        handle, result = await ask_and_wait(client, settings, "hello")
        _, second = await ask_and_wait(client, settings, "hello again")
    assert result.model == "steady"
    assert [(a.model, a.ok) for a in result.attempts] == [("flaky", False), ("steady", True)]
    assert "scripted permanent failure" in (result.attempts[0].error or "")
    decisions = await routing_from_history(handle)
    assert [d["chosen"] for d in decisions] == ["flaky", "steady"]
    # The failure cooled "flaky" down for everyone: the next request skips it without trying.
    assert [a.model for a in second.attempts] == ["steady"]
    assert pool.status("flaky").cooling_down and pool.status("flaky").failures == 1


async def test_transient_errors_are_retried_before_falling_back(client, settings, run_worker, scripted_pool):
    pool = scripted_pool(scripted("shaky", fail="transient"), scripted("backup", local=False))
    settings.llm_max_attempts = 3
    async with run_worker(pool):
        handle, result = await ask_and_wait(client, settings, "hello")
    assert result.model == "backup"
    history = await handle.fetch_history()
    failed = [e.activity_task_failed_event_attributes for e in history.events
              if e.HasField("activity_task_failed_event_attributes")]
    # One failed activity: Temporal retried it up to the attempt limit, then the request fell back.
    assert [f.retry_state for f in failed] == [RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED]
    started = [e for e in history.events if e.HasField("activity_task_started_event_attributes")]
    assert max(e.activity_task_started_event_attributes.attempt for e in started) == 3
    assert [(a.model, a.ok) for a in result.attempts] == [("shaky", False), ("backup", True)]
    assert "scripted transient failure" in (result.attempts[0].error or "")


async def test_when_every_model_fails_the_request_fails_with_reasons(client, settings, run_worker, scripted_pool):
    pool = scripted_pool(scripted("one", fail="permanent"), scripted("two", fail="permanent"))
    async with run_worker(pool):
        handle = await ask(client, settings, "hello")
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    kind, message = failure_message(info.value)
    assert kind == "NoModelAvailable"
    assert "one:" in message and "two:" in message


async def test_missing_gguf_file_is_reported_clearly(client, settings, run_worker, scripted_pool):
    missing = ModelSpec(id="ghost", provider="llama_cpp", path="/nonexistent/ghost.gguf", local=True,
                        capabilities=(Capability.GENERAL,))
    async with run_worker(scripted_pool(missing)):
        with pytest.raises(WorkflowFailureError) as info:
            await (await ask(client, settings, "hello", model="ghost")).result()
    kind, message = failure_message(info.value)
    assert kind == "NoModelAvailable"
    assert "GGUF file not found: /nonexistent/ghost.gguf" in message


async def test_unknown_forced_model_is_rejected(client, settings, run_worker, scripted_pool):
    async with run_worker(scripted_pool(scripted("echo"))):
        with pytest.raises(WorkflowFailureError) as info:
            await (await ask(client, settings, "hello", model="nope")).result()
    kind, message = failure_message(info.value)
    assert kind == "UnknownModel" and "known models: echo" in message


async def test_forced_model_wins_over_routing(client, settings, run_worker, scripted_pool):
    pool = scripted_pool(scripted("local-one"), scripted("cloud-one", local=False))
    async with run_worker(pool):
        _, result = await ask_and_wait(client, settings, "hello", model="cloud-one")
    assert result.model == "cloud-one"


async def test_invalid_input_fails_the_workflow_without_retrying(client, settings, run_worker, scripted_pool):
    async with run_worker(scripted_pool()):
        handle = await client.start_workflow(
            RequestWorkflow.run, {"request": {"request_id": "x1", "prompt": "   "}},
            id=f"bad-{uuid.uuid4().hex}", task_queue=settings.task_queue)
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    assert isinstance(info.value.cause, ApplicationError)
    assert info.value.cause.type == "InvalidRequest" and "prompt is empty" in info.value.cause.message


async def test_only_a_streamed_request_has_an_answer_stream(client, settings, run_worker, scripted_pool):
    """The stream's handlers are registered for streamed requests only (readers of other runs take the result)."""
    offset = "__temporal_workflow_stream_offset"
    async with run_worker(scripted_pool(scripted("echo"))):
        plain, _ = await ask_and_wait(client, settings, "hello")
        streamed, result = await ask_and_wait(client, settings, "hello", stream=True)
        assert await streamed.query(offset, result_type=int) >= 1  # at least the end of the answer
        with pytest.raises(WorkflowQueryFailedError):  # unknown query (its message is sealed)
            await plain.query(offset, result_type=int)
    assert result.answer


async def test_same_request_id_starts_one_workflow(client, settings, run_worker, scripted_pool):
    request_id = uuid.uuid4().hex
    async with run_worker(scripted_pool()):
        first = await ask(client, settings, "hello", request_id=request_id)
        second = await ask(client, settings, "hello", request_id=request_id)
        assert first.id == second.id == f"request-{request_id}"
        assert first.result_run_id == second.result_run_id
        await first.result()
    count = await client.count_workflows(f"WorkflowId = 'request-{request_id}'")
    assert count.count == 1


async def test_same_request_id_after_completion_does_not_run_again(client, settings, run_worker, scripted_pool):
    request_id = uuid.uuid4().hex
    async with run_worker(scripted_pool()):
        first = await ask(client, settings, "hello", request_id=request_id)
        answer = await first.result()
        again = await ask(client, settings, "a different prompt", request_id=request_id)
        assert (await again.result()).answer == answer.answer
    count = await client.count_workflows(f"WorkflowId = 'request-{request_id}'")
    assert count.count == 1


async def test_the_policy_is_the_workers_not_the_clients(client, settings, run_worker, scripted_pool):
    """A client that sends its own `tuning` (more review rounds, no semantic guard...) is ignored: the worker's settings
    decide, and each run records the policy version it ran under."""
    from domain.requests import RequestResult
    from hybrid_llm.policy_file import load_policy
    from hybrid_llm.worker_policy import worker_policy
    from tests.test_delegation import PROMPT, team

    settings.delegation_max_rounds = 1
    never = [[".", '{"verdict": "changes", "findings": ["still insecure"]}']]
    raw = {"request": {"request_id": uuid.uuid4().hex, "prompt": PROMPT},
           "tuning": {"delegation_max_rounds": 5, "delegation_max_depth": 10, "guard_semantic": False}}
    async with run_worker(scripted_pool(*team(never))):
        handle = await client.start_workflow("RequestWorkflow", raw, id=f"policy-{uuid.uuid4().hex}",
                                             task_queue=settings.task_queue, result_type=RequestResult)
        result = await handle.result()
    assert [d["to"] for d in result.delegations] == ["coder", "reviewer"]  # one round: the worker's setting
    expected = worker_policy(settings, load_policy(settings))[1]
    assert result.policy_version == expected
    assert await (await handle.describe()).memo_value("policy_version") == expected


async def test_options_above_the_workers_caps_are_refused(client, settings, run_worker, scripted_pool):
    settings.max_tokens_cap = 100
    async with run_worker(scripted_pool()):
        refused = await ask(client, settings, "hello", max_tokens=200)
        with pytest.raises(WorkflowFailureError) as info:
            await refused.result()
        _, fine = await ask_and_wait(client, settings, "hello", max_tokens=100)
    kind, message = failure_message(info.value)
    assert kind == "InvalidRequest" and "above this platform's cap of 100" in message
    assert fine.answer
    # A run refused before routing still records the policy it was refused under.
    assert await (await refused.describe()).memo_value("policy_version") == fine.policy_version


async def test_the_policy_version_travels_with_the_first_routing_record(client, settings, run_worker, scripted_pool):
    """One memo upsert in the first workflow task (policy version and routing together), not one each."""
    from temporalio.api.enums.v1 import EventType

    async with run_worker(scripted_pool()):
        handle, result = await ask_and_wait(client, settings, "hello")
    events = (await handle.fetch_history()).events
    first_task = events[:next(i for i, e in enumerate(events) if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)]
    upserts = [e for e in first_task if e.event_type == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED]
    assert [sorted(e.workflow_properties_modified_event_attributes.upserted_memo.fields) for e in upserts] == [
        ["policy_version", "routing"]]
    assert await (await handle.describe()).memo_value("policy_version") == result.policy_version


async def test_a_keys_model_allowlist_narrows_the_routers_choice(client, settings, run_worker, scripted_pool):
    from domain.principals import AccessRole, Principal

    only_echo = Principal(id="only-echo", name="only echo", roles=(AccessRole.USER,), kind="key", models=("echo",))
    nothing = Principal(id="nothing", name="nothing", roles=(AccessRole.USER,), kind="key", models=("absent",))
    pool = scripted_pool(scripted("other"), scripted("echo", local=False))  # the router prefers the local "other"
    async with run_worker(pool):
        _, free = await ask_and_wait(client, settings, "hello")
        _, narrowed = await ask_and_wait(client, settings, "hello", principal=only_echo)
        with pytest.raises(WorkflowFailureError) as info:
            await (await ask(client, settings, "hello", principal=nothing)).result()
    assert (free.model, narrowed.model) == ("other", "echo")
    kind, message = failure_message(info.value)
    assert kind == "NoModelAvailable" and "allowlist" in message
