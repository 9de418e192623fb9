"""Routing sees the pool that will serve the call, across workers: each worker publishes its pool (PostgreSQL
`pool_state`), and a call is sent to the queue of the worker whose pool the router chose."""

from __future__ import annotations

from hybrid_llm.temporal import connect
from tests.conftest import scripted
from tests.helpers import ask_and_wait


async def complete_queues(handle) -> list[str]:
    """The task queue each llm.complete of this request was sent to."""
    history = await handle.fetch_history()
    return [e.activity_task_scheduled_event_attributes.task_queue.name for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")
            and e.activity_task_scheduled_event_attributes.activity_type.name == "llm.complete"]


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
