"""Routing sees the pool that will serve the call, across workers: each worker publishes its pool (PostgreSQL
`pool_state`), and a call is sent to the queue of the worker whose pool the router chose."""

from __future__ import annotations

import functools

import worker as worker_module
from domain.llm import MISPLACED
from hybrid_llm.temporal import PayloadReader, connect, keyring_of
from tests.conftest import scripted
from tests.helpers import ask_and_wait, model_calls


async def complete_queues(handle) -> list[str]:
    """The pool each llm.complete of this request was sent to: its task queue, or, for a call started eagerly on the
    worker running the workflow (sent on the workflow's own queue), the placement it carries (the activity refuses
    to run on any other worker), or, for a call run as a local activity of the workflow task, the pool of the worker
    that ran it (its result says)."""
    history = await handle.fetch_history()
    return [call["result"]["served_by"] if call["local"] else call["input"].get("placement") or call["task_queue"]
            for call in model_calls(history, PayloadReader(keyring_of(handle._client)))]


async def misplaced(handle) -> int:
    """How many of this request's calls reached a worker other than their placement (and were sent on)."""
    history = await handle.fetch_history()
    return sum(1 for e in history.events if e.HasField("activity_task_failed_event_attributes")
               and e.activity_task_failed_event_attributes.failure.application_failure_info.type == MISPLACED)


async def test_the_request_goes_to_the_worker_that_has_the_model_loaded(client, settings, run_worker,
                                                                        scripted_pool):
    warm, cold = scripted_pool(scripted("m")), scripted_pool(scripted("m"))
    warm.ensure_loaded("m")
    async with run_worker(warm) as a, run_worker(cold, client=await connect(settings)) as b:
        assert a.task_queue == b.task_queue  # one deployment, two workers
        results = [await ask_and_wait(client, settings, f"hello {i}") for i in range(6)]
        queues = [q for handle, _ in results for q in await complete_queues(handle)]
        seen_by_b = b.shared.snapshot()
    assert all(r.model == "m" for _, r in results)
    assert queues == [a.pool_queue] * 6  # whichever worker ran the workflow task, the call went to the warm pool
    assert not cold.status("m").loaded  # nobody loaded a second copy
    assert seen_by_b.get("m", a.pool_queue).loaded and not seen_by_b.get("m", b.pool_queue).loaded


async def test_a_model_cooling_down_on_one_worker_is_known_to_every_router(client, settings, run_worker,
                                                                          scripted_pool):
    broken = scripted_pool(scripted("m", fail="permanent"), scripted("backup", local=False))
    healthy = scripted_pool(scripted("m"), scripted("backup", local=False))
    broken.ensure_loaded("m")  # the router prefers the loaded copy: it fails there
    async with run_worker(broken) as a, run_worker(healthy, client=await connect(settings)) as b:
        handle, first = await ask_and_wait(client, settings, "hello")
        # This request saw m fail and fell back (a model that failed for a request is not retried by it).
        assert [(x.model, x.ok) for x in first.attempts] == [("m", False), ("backup", True)]
        assert (await complete_queues(handle))[0] == a.pool_queue
        views = [a.shared.snapshot(), b.shared.snapshot()]
        later = [await ask_and_wait(client, settings, f"hello again {i}") for i in range(4)]
        queues = [q for h, _ in later for q in await complete_queues(h)]
    for view in views:  # both workers' routers know the cooldown on a, and that b's copy is fine
        assert view.get("m", a.pool_queue).cooling_down
        assert not view.get("m", b.pool_queue).cooling_down
    # Later requests never try the cooling copy: the healthy worker's copy answers (loaded there on first use).
    assert all(r.model == "m" and [x.ok for x in r.attempts] == [True] for _, r in later)
    assert set(queues) == {b.pool_queue}


async def test_a_call_meant_for_one_worker_that_another_takes_is_sent_to_its_pool(client, settings, run_worker,
                                                                                scripted_pool, monkeypatch):
    """A call for the pool of the worker running the workflow goes on the workflow's queue to start eagerly there. When
    the server does not hand it back eagerly (here: worker a never asks), any worker may take it from that queue: the
    wrong one refuses it (Misplaced) and the workflow sends it to the pool's own queue. Nothing runs on the cold pool."""
    settings.local_call_max_ms = 0  # the calls go as activities (not inside a's workflow task), eagerly or not
    warm, cold = scripted_pool(scripted("m")), scripted_pool(scripted("m"))
    warm.ensure_loaded("m")
    monkeypatch.setattr(worker_module, "Worker",
                        functools.partial(worker_module.Worker, disable_eager_activity_execution=True))
    async with run_worker(warm) as a:
        monkeypatch.undo()
        async with run_worker(cold, client=await connect(settings)):
            refused, answered = 0, []
            for i in range(40):  # each call a's workflow task places is taken by b about half the time
                handle, result = await ask_and_wait(client, settings, f"hello {i}")
                answered.append((result.model, [x.ok for x in result.attempts], await complete_queues(handle)))
                refused += await misplaced(handle)
                if refused >= 2:
                    break
    assert refused >= 2, "no call was ever taken by the other worker: the test did not exercise the refusal"
    assert all(model == "m" and oks == [True] for model, oks, _ in answered)
    assert all(set(queues) == {a.pool_queue} for _, _, queues in answered)
    assert not cold.status("m").loaded  # the cold worker never ran the model
