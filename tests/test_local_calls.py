"""A short model call that the pool of the worker running the workflow serves runs as a LOCAL activity, inside the
workflow task (workflows/model_call.py `_runs_here`): the whole request is then one workflow task. Which calls do is
decided in workflow code from what history holds (the pool snapshot with the model's measured time per token, and
the worker's policy), so replay takes the same path. What the model was asked stays in history: the local result
carries the request."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType

from hybrid_llm.audit import timeline
from hybrid_llm.temporal import PayloadReader, keyring_of
from tests.conftest import scripted
from tests.helpers import ask_and_wait, model_calls

WORKFLOW_TASKS = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED


async def calls_and_tasks(client, handle) -> tuple[list[dict], int]:
    history = await handle.fetch_history()
    tasks = sum(1 for e in history.events if e.event_type == WORKFLOW_TASKS)
    return model_calls(history, PayloadReader(keyring_of(client))), tasks


async def test_a_measured_short_call_runs_inside_the_workflow_task(client, settings, run_worker, scripted_pool):
    pool = scripted_pool(scripted("echo"))
    async with run_worker(pool):
        first, _ = await ask_and_wait(client, settings, "What does the keeper do?", temperature=0.4)
        handle, result = await ask_and_wait(client, settings, "When is the lamp lit?", temperature=0.4)
        full = await timeline.show(client, handle.id, full=True)
    assert result.answer == "scripted answer to: When is the lamp lit?"
    # The first call of a model on a worker has no measured speed: an activity, as before.
    calls, tasks = await calls_and_tasks(client, first)
    assert [c["local"] for c in calls] == [False] and tasks >= 2
    # Measured since: preflight, routing and the answer in ONE workflow task, the call a local activity.
    calls, tasks = await calls_and_tasks(client, handle)
    assert [c["local"] for c in calls] == [True] and tasks == 1
    [call] = calls
    # History still holds what was asked (the result echoes the request) and what was answered.
    assert call["input"]["model_id"] == "echo" and call["input"]["temperature"] == 0.4
    assert call["input"]["messages"][-1] == {"role": "user", "content": "When is the lamp lit?"}
    assert call["result"]["text"] == result.answer and call["result"]["served_by"] == pool_queue(settings, call)
    # The audit shows it as any model call, with exactly what the model saw.
    [entry] = [e for e in full["entries"] if e["kind"] == "model_call"]
    assert entry["model"] == "echo" and entry["messages"][-1]["content"] == "When is the lamp lit?"
    assert entry["output"] == result.answer


def pool_queue(settings, call) -> str:
    served = call["result"]["served_by"]
    assert served and served.startswith(settings.task_queue)  # this deployment's worker pool
    return served


async def test_a_streamed_call_never_runs_inside_the_workflow_task(client, settings, run_worker, scripted_pool):
    """Its batches are signals to the workflow, which a workflow task busy with the call would hold back."""
    async with run_worker(scripted_pool(scripted("echo"))):
        await ask_and_wait(client, settings, "warm up")  # measured: a plain call would now run locally
        handle, result = await ask_and_wait(client, settings, "stream this", stream=True)
    calls, _ = await calls_and_tasks(client, handle)
    assert [c["local"] for c in calls] == [False] and result.answer == "scripted answer to: stream this"


async def test_a_call_expected_to_be_long_goes_to_the_pool_as_an_activity(client, settings, run_worker,
                                                                          scripted_pool):
    """Expected time = the model's measured time per token x max_tokens, against the worker's local_call_max_ms."""
    settings.local_call_max_ms = 200
    async with run_worker(scripted_pool(scripted("slow", delay_ms=60))):  # 60 ms per call of a few words
        await ask_and_wait(client, settings, "warm up")
        short, _ = await ask_and_wait(client, settings, "one", max_tokens=1)  # tens of ms x 1: local
        long, _ = await ask_and_wait(client, settings, "two", max_tokens=64)  # tens of ms x 64: an activity
    assert [c["local"] for c in (await calls_and_tasks(client, short))[0]] == [True]
    assert [c["local"] for c in (await calls_and_tasks(client, long))[0]] == [False]


async def test_the_worker_policy_can_turn_local_calls_off(client, settings, run_worker, scripted_pool):
    settings.local_call_max_ms = 0
    async with run_worker(scripted_pool(scripted("echo"))):
        await ask_and_wait(client, settings, "warm up")
        handle, _ = await ask_and_wait(client, settings, "hello")
    assert [c["local"] for c in (await calls_and_tasks(client, handle))[0]] == [False]
