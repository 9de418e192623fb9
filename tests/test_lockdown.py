"""Lockdown on the real Temporal dev server and PostgreSQL: pause everything, refuse side effects, release."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa
from temporalio.exceptions import ApplicationError

from activities.llm_pool import LLMPool
from activities.lockdown_gate import LockdownGate
from activities.lockdown_store import LockdownStore
from activities.providers.scripted import ScriptedProvider
from domain.registry import Capability, ModelSpec, Registry
from hybrid_llm import lockdown_client
from hybrid_llm.lockdown_client import LockdownError
from tests.helpers import ask
from tests.processes import acli

SLOW = ModelSpec(id="slow", provider="scripted", local=True, max_concurrency=64, capabilities=(Capability.GENERAL,),
                 options={"delay_ms": 300})


class RecordingProvider(ScriptedProvider):
    """Records when each LLM call really starts: the side effect the gate must stop."""

    starts: list[float] = []

    def complete(self, messages, max_tokens, temperature, json_schema=None):
        self.starts.append(time.time())
        return super().complete(messages, max_tokens, temperature, json_schema)


def recording_pool() -> tuple[LLMPool, list[float]]:
    starts: list[float] = []
    provider = RecordingProvider(SLOW)
    provider.starts = starts
    return LLMPool(Registry(models=(SLOW,)), provider_factory=lambda spec: provider), starts


async def wait_until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_lockdown_pauses_100_in_flight_requests_and_an_authenticated_release_resumes_them(
        client, settings, run_worker, lockdown_secret):
    pool, starts = recording_pool()
    async with run_worker(pool):
        handles = await asyncio.gather(*(ask(client, settings, f"q{i}") for i in range(100)))

        async def some_started() -> bool:
            return len(starts) >= 16

        await wait_until(some_started)
        state = await lockdown_client.engage(client, settings, "panic button in a test", actor="pytest")
        acknowledged = time.time()
        assert state.locked and state.epoch >= 1

        await asyncio.sleep(2.0)  # plenty of time for anything that was going to start
        assert not [t for t in starts if t > acknowledged], "an LLM call started after the lockdown was acknowledged"
        statuses = [(await h.describe()).status.name for h in handles]
        done_while_locked = statuses.count("COMPLETED")
        assert done_while_locked < 100
        running = [h for h, s in zip(handles, statuses) if s == "RUNNING"]

        async def paused() -> bool:  # a starved machine may take seconds per workflow task to see the signal
            # A request whose call was admitted before the lockdown may still finish (a CI run once picked one that
            # completed later and never paused); the others pause.
            stages = await asyncio.gather(*(h.query("progress") for h in running))
            return any(stage["stage"] == "paused" for stage in stages)

        await wait_until(paused)

        async def locked_visible() -> bool:
            count = await client.count_workflows(f"TaskQueue = '{settings.task_queue}' AND Locked = true")
            return count.count >= 1

        await wait_until(locked_visible)
        assert (await lockdown_client.current(client, settings)).locked

        with pytest.raises(LockdownError) as wrong:
            await lockdown_client.release(client, settings, "not the secret", actor="pytest")
        assert wrong.value.kind == "WrongSecret"
        with pytest.raises(LockdownError) as slow:
            await lockdown_client.release(client, settings, lockdown_secret, actor="pytest")
        assert slow.value.kind == "SlowDown"  # each wrong secret doubles the wait before the next try
        await asyncio.sleep(2.1)
        released = await lockdown_client.release(client, settings, lockdown_secret, actor="pytest")
        assert not released.locked and released.epoch == state.epoch + 1

        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 60)
    assert [r.answer for r in results] == [f"scripted answer to: q{i}" for i in range(100)]
    # Activities run at least once: a heartbeat missed on a starved machine may re-run a call, but each request
    # records exactly one answer.
    assert len(starts) >= 100
    attempts = LockdownStore(pool_engine(settings), settings.task_queue).release_attempts(state.epoch)
    assert [ok for _, ok, _ in attempts] == [False, True]


def pool_engine(settings):
    from activities.db import make_engine

    return make_engine(settings.effective_database_url, pool_size=1)


async def test_new_requests_are_held_and_a_worker_restart_keeps_the_lockdown(client, settings, run_worker,
                                                                             lockdown_secret):
    pool, starts = recording_pool()
    async with run_worker(pool):
        await lockdown_client.engage(client, settings, "hold everything", actor="pytest")
    # A new worker (and a new request) after the restart: still locked, the request waits.
    async with run_worker(recording_pool()[0]) as _:
        handle = await ask(client, settings, "late question")

        async def paused() -> bool:
            try:
                return (await handle.query("progress"))["stage"] == "paused"
            except Exception:  # noqa: BLE001 - not started yet
                return False

        await wait_until(paused)
        assert (await lockdown_client.current(client, settings)).locked
        await lockdown_client.release(client, settings, lockdown_secret, actor="pytest")
        result = await asyncio.wait_for(handle.result(), 30)
    assert result.answer == "scripted answer to: late question"


def test_the_gate_stays_shut_when_the_state_cannot_be_read():
    unreachable = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none",
                                   connect_args={"connect_timeout": 1})
    gate = LockdownGate(LockdownStore(unreachable, scope="x"))
    with pytest.raises(ApplicationError) as info:
        with gate.admit("an LLM call"):
            pytest.fail("admitted without confirming the state")
    assert info.value.type == "GateUnavailable" and not info.value.non_retryable


async def test_cli_panic_button_status_and_release(settings, run_worker, lockdown_secret):
    pool, _ = recording_pool()
    async with run_worker(pool):
        engaged = await acli(settings, "lockdown", "engage", "--reason", "suspicious activity", "--json")
        assert engaged.returncode == 0, engaged.stderr
        status = await acli(settings, "lockdown", "status", "--json")
        import json

        state = json.loads(status.stdout)
        assert state["locked"] and state["reason"] == "suspicious activity" and state["trigger"] == "panic"
        wrong = await acli(settings, "lockdown", "release", "--secret-stdin", stdin="guess\n")
        assert wrong.returncode == 1 and "WrongSecret" in wrong.stderr and "Traceback" not in wrong.stderr
        await asyncio.sleep(2.1)
        right = await acli(settings, "lockdown", "release", "--secret-stdin", "--json", stdin=lockdown_secret + "\n")
        assert right.returncode == 0, right.stderr
        assert json.loads(right.stdout)["locked"] is False


async def test_resource_exhaustion_locks_down(client, settings, run_worker, lockdown_secret):
    from activities.resource_monitor import ResourceMonitor
    from domain.lockdown import Trigger
    from domain.resources import ResourceLimits

    pool, _ = recording_pool()
    async with run_worker(pool):
        calm = ResourceMonitor(client, settings.temporal_namespace, settings.task_queue, ResourceLimits())
        assert await calm.check_once() is None
        sample = await calm.sample()
        assert 0 < sample.memory_percent < 100
        strained = ResourceMonitor(client, settings.temporal_namespace, settings.task_queue,
                                   ResourceLimits(memory_percent=max(1.0, sample.memory_percent / 2)))
        reason = await strained.check_once()
        assert reason is not None and "memory" in reason
        state = await lockdown_client.current(client, settings)
        assert state.locked and state.trigger == Trigger.RESOURCE_EXHAUSTION and state.actor == "resource-monitor"
        await lockdown_client.release(client, settings, lockdown_secret, actor="pytest")
