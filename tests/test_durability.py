"""Durability: requests survive a worker killed mid-activity, quickly and exactly once."""

from __future__ import annotations

import asyncio
import signal
import time

from temporalio.api.enums.v1 import EventType

from hybrid_llm.temporal import PayloadReader, keyring_of
from tests.helpers import ask, model_calls
from tests.processes import scripted_entry, start_worker, wait_for_poller, write_registry


async def test_sigkilled_worker_loses_nothing_and_runs_nothing_twice(client, settings, tmp_path):
    settings.models_file = write_registry(tmp_path / "models.toml", scripted_entry("slow", delay_ms=3000))
    log = tmp_path / "worker.log"
    first = start_worker(settings, log)
    second = None
    try:
        await wait_for_poller(client, settings, first)
        handles = await asyncio.gather(*(ask(client, settings, f"question {i}") for i in range(20)))

        async def running_activities() -> int:
            descs = await asyncio.gather(*(h.describe() for h in handles))
            return sum(len(d.raw_description.pending_activities) for d in descs)

        deadline = time.monotonic() + 60
        in_flight = await running_activities()
        while in_flight < 16 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            in_flight = await running_activities()
        assert in_flight >= 16, "requests were not in flight when the worker was killed"
        first.send_signal(signal.SIGKILL)  # at once: each call takes 3 s, so they are still running
        first.wait()

        second = start_worker(settings, log)
        restarted = time.monotonic()
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout=60)
        recovery_s = time.monotonic() - restarted
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)

    assert [r.answer for r in results] == [f"scripted answer to: question {i}" for i in range(20)]
    for handle in handles:
        history = await handle.fetch_history()
        types = [e.event_type for e in history.events]
        assert types.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED) == 1
        answered = [call for call in model_calls(history, PayloadReader(keyring_of(client))) if call["result"]]
        assert len(answered) == 1  # the answer was produced and recorded once (an activity or a local activity)
    # 1 s heartbeat timeout + 1 s sticky timeout: far below Temporal's ~14 s default recovery.
    print(f"recovery after SIGKILL: {recovery_s:.2f}s")
    assert recovery_s < 30, f"recovery took {recovery_s:.1f}s"  # speed itself is measured by bench/pipeline.py


async def test_a_worker_killed_during_a_local_call_loses_nothing(client, settings, tmp_path):
    """A call run inside the workflow task (a local activity: the model is measured on this worker and the policy
    lets a call this long run there) dies with its worker: the task times out, another worker runs it again, and
    the answer is recorded once."""
    settings.models_file = write_registry(tmp_path / "models.toml", scripted_entry("slow", delay_ms=1500))
    log = tmp_path / "worker.log"
    local = {"HYBRID_LOCAL_CALL_MAX_MS": "1000000"}
    first, second = start_worker(settings, log, **local), None
    try:
        await wait_for_poller(client, settings, first)
        await (await ask(client, settings, "warm up")).result()  # measured: the next call runs inside its task
        handle = await ask(client, settings, "question")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # its (only) workflow task is running on the first worker
            events = (await handle.fetch_history()).events
            if events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # the preflight is done; the 1.5 s call runs
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = start_worker(settings, log, **local)
        result = await asyncio.wait_for(handle.result(), timeout=60)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)
    assert result.answer == "scripted answer to: question"
    history = await handle.fetch_history()
    types = [e.event_type for e in history.events]
    timed_out = types.index(EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT)  # the dead worker's task
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in types[:timed_out]  # it was running the call itself
    calls = model_calls(history, PayloadReader(keyring_of(client)))
    assert len([c for c in calls if c["result"]]) == 1  # answered and recorded once


async def test_requests_complete_across_a_temporal_server_restart(tmp_path, postgres_url):
    """Stop the server with requests in flight, restart it on the same SQLite file: they all complete."""
    from temporalio.client import WorkflowExecutionStatus

    from domain.requests import RequestResult
    from hybrid_llm.settings import Settings
    from hybrid_llm.stack import procs
    from hybrid_llm.stack.temporal_server import TemporalServer
    from hybrid_llm.temporal import connect, ensure_search_attributes

    server = TemporalServer(tmp_path / "temporal", procs.free_port(), procs.free_port(), headless=True)
    server.start()
    settings = Settings(state_dir=tmp_path / "state", temporal_address=server.address, task_queue="restart",
                        database_url=postgres_url,
                        models_file=write_registry(tmp_path / "models.toml", scripted_entry("slow", delay_ms=2500)))
    worker = None
    try:
        client = await connect(settings)
        await ensure_search_attributes(client, settings.temporal_namespace)
        worker = start_worker(settings, tmp_path / "worker.log")
        await wait_for_poller(client, settings, worker)
        handles = await asyncio.gather(*(ask(client, settings, f"q{i}") for i in range(5)))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pending = [len((await h.describe()).raw_description.pending_activities) for h in handles]
            if all(pending):
                break
            await asyncio.sleep(0.05)
        assert server.stop()  # requests are mid-activity on the worker
        server.start()
        client = await connect(settings)
        fresh = [client.get_workflow_handle(h.id, result_type=RequestResult) for h in handles]
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in fresh)), 90)
        assert [r.answer for r in results] == [f"scripted answer to: q{i}" for i in range(5)]
        for h in handles:
            assert (await client.get_workflow_handle(h.id).describe()).status == WorkflowExecutionStatus.COMPLETED
        assert worker.poll() is None, "the worker reconnects by itself and keeps running"
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            worker.wait(10)
        server.stop()
