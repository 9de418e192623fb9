"""Benchmark the lockdown and the rule layer, with a baseline measured in the same run.

Prints progress to stderr and one JSON object as the last line of stdout:
  lockdown_ack_s                  engage called -> acknowledged (the gate is shut: nothing more starts anywhere)
  lockdown_all_paused_s           engage called -> no side effect running anywhere: every LLM call that was in
                                  flight stopped (between tokens), for N in-flight requests (default 500)
  lockdown_all_parked_s           engage called -> every one of the N workflows parked (Locked=true in visibility)
  side_effects_started_after_ack  LLM calls that started after the acknowledgement (must be 0)
  running_sandbox_killed_s        engage called -> a running `sleep 600` sandbox's process is gone (p50 of runs)
  egress_proxy_overhead_ms_p50    a connection + one HTTP exchange through the egress proxy minus the same made
                                  directly (bench/egress.py, by the sandboxnet helper)
  command_scan_us_p99 / prompt_scan_us_p99   rule layer, per text, over tests/guard_corpus
  bare_roundtrip_s_p50            baseline: one bare one-activity workflow, start to result, same machine, same run;
                                  the *_over_bare ratios divide by it

Usage: python bench/security.py [--requests 500] [--sandbox-runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from activities.db import make_engine  # noqa: E402
from activities.llm_pool import LLMPool  # noqa: E402
from activities.lockdown_store import LockdownStore  # noqa: E402
from activities.providers.scripted import ScriptedProvider  # noqa: E402
from bench.bare_workflow import BareActivities, BareWorkflow  # noqa: E402
from bench.egress import egress_overhead  # noqa: E402
from bench.stack import bench_stack  # noqa: E402
from domain.guardrails import scan_command, scan_text  # noqa: E402
from domain.principals import AccessRole, Principal  # noqa: E402
from domain.registry import Capability, ModelSpec, Registry  # noqa: E402
from domain.requests import UserRequest  # noqa: E402
from domain.sandbox import Limits, ReviewDecision, SandboxSpec  # noqa: E402
from hybrid_llm import lockdown_client, sandbox_client  # noqa: E402
from hybrid_llm.request_client import start_request  # noqa: E402
from hybrid_llm.settings import Settings  # noqa: E402
from hybrid_llm.temporal import connect, ensure_search_attributes  # noqa: E402
from worker import build_worker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench secret, long enough"
BENCH_APPROVER = Principal(id="bench-approver", name="bench", roles=(AccessRole.APPROVER,))
# A generation that would last a minute: every call is still running when the lockdown engages.
LONG = ModelSpec(id="long", provider="scripted", local=True, max_concurrency=1024, capabilities=tuple(Capability),
                 options={"reply": "ok", "delay_ms": 60_000})
INSTANT = ModelSpec(id="instant", provider="scripted", local=True, max_concurrency=1024,
                    capabilities=tuple(Capability), options={"reply": "ok"})


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Counting(ScriptedProvider):
    """Counts calls running now, and when each started (the side effect the gate and the watcher must stop)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.lock = threading.Lock()
        self.running = 0
        self.starts: list[float] = []

    def complete(self, messages, max_tokens, temperature, json_schema=None):
        with self.lock:
            self.running += 1
            self.starts.append(time.time())
        try:
            return super().complete(messages, max_tokens, temperature, json_schema)
        finally:
            with self.lock:
                self.running -= 1


def p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def bare_roundtrip(client: Client, settings: Settings, executor, runs: int = 20) -> float:
    queue = settings.task_queue + "-bare"
    pool = LLMPool(Registry(models=(INSTANT,)))
    bare = Worker(client, task_queue=queue, workflows=[BareWorkflow], activities=[BareActivities(pool, "instant").complete],
                  activity_executor=executor, max_concurrent_activities=4)
    times = []
    async with bare:
        for _ in range(runs + 3):
            t0 = time.perf_counter()
            await client.execute_workflow(BareWorkflow.run, "hi", id=f"bare-{uuid.uuid4().hex}", task_queue=queue)
            times.append(time.perf_counter() - t0)
    return statistics.median(times[3:])


async def wait_for(predicate, timeout: float, every: float = 0.01) -> float:
    """Seconds until `predicate()` holds (awaitable or not), polling every `every`."""
    t0 = time.perf_counter()
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(every)


async def lockdown_pause(client: Client, settings: Settings, engine, n: int) -> dict:
    provider = Counting(LONG)
    pool = LLMPool(Registry(models=(LONG,)), provider_factory=lambda spec: provider)
    operator = lockdown_client.local_operator("bench")
    worker = build_worker(client, settings, pool, engine=engine)
    async with worker:
        # A deployment's controller already runs: engage and release once before measuring.
        await lockdown_client.engage(client, settings, "bench: warm-up", operator)
        await lockdown_client.release(client, settings, SECRET, operator)
        baseline = await bare_roundtrip(client, settings, worker.config()["activity_executor"])
        say(f"bare round trip p50 {baseline * 1000:.1f} ms; starting {n} requests")
        await asyncio.gather(*(start_request(client, settings, UserRequest(
            request_id=uuid.uuid4().hex, prompt=f"q{i}", max_tokens=16)) for i in range(n)))
        await wait_for(lambda: provider.running >= min(n, settings.worker_threads), 120)
        in_flight = provider.running
        say(f"{in_flight} LLM calls running (the worker's {settings.worker_threads} slots), the rest queued: engage")
        t0 = time.perf_counter()
        await lockdown_client.engage(client, settings, "bench: panic button", operator)
        ack = time.perf_counter() - t0
        acked_at = time.time()
        await wait_for(lambda: provider.running == 0, 120)
        paused = time.perf_counter() - t0
        say(f"ack {ack:.3f}s, no LLM call running after {paused:.3f}s; waiting for every workflow to park")

        async def parked() -> bool:
            count = await client.count_workflows(f"TaskQueue = '{settings.task_queue}' AND Locked = true "
                                                 "AND WorkflowType = 'RequestWorkflow' AND ExecutionStatus = 'Running'")
            return count.count >= n

        try:
            await wait_for(parked, 180, every=0.1)
            all_parked = time.perf_counter() - t0
        except TimeoutError:
            all_parked = None
        await asyncio.sleep(1.0)  # anything that was going to start has started by now
        after = sum(1 for t in provider.starts if t > acked_at)
        for wf in [w async for w in client.list_workflows(f"TaskQueue = '{settings.task_queue}' AND "
                                                          "WorkflowType = 'RequestWorkflow' AND "
                                                          "ExecutionStatus = 'Running'")]:
            await client.get_workflow_handle(wf.id).terminate("bench done")
        await lockdown_client.release(client, settings, SECRET, operator)
    return {"requests_in_flight": n, "llm_calls_running_at_engage": in_flight, "lockdown_ack_s": round(ack, 3),
            "lockdown_all_paused_s": round(paused, 3),
            "lockdown_all_parked_s": round(all_parked, 3) if all_parked is not None else None,
            "side_effects_started_after_ack": after, "bare_roundtrip_s_p50": round(baseline, 4),
            "lockdown_all_paused_over_bare": round(paused / baseline, 1)}


def sleepers() -> set[int]:
    return {q.pid for q in psutil.process_iter(["cmdline"]) if (q.info["cmdline"] or [])[:2] == ["sleep", "600"]}


async def sandbox_kill(client: Client, settings: Settings, engine, runs: int) -> dict:
    for name in ("downloads", "uploads", "rag"):
        (settings.root / name).mkdir(parents=True, exist_ok=True)
    operator = lockdown_client.local_operator("bench")
    spec = SandboxSpec(command=("sleep", "600"), limits=Limits(wall_s=600))
    times = []
    async with build_worker(client, settings, LLMPool(Registry(models=(INSTANT,))), engine=engine):
        for i in range(runs):
            before = sleepers()
            handle = await sandbox_client.start(client, settings, spec, ReviewDecision(approve=True, by="bench", principal=BENCH_APPROVER))
            await wait_for(lambda: sleepers() - before, 60)
            t0 = time.perf_counter()
            await lockdown_client.engage(client, settings, f"bench: kill sandbox {i}", operator)
            await wait_for(lambda: not (sleepers() - before), 60, every=0.005)
            times.append(time.perf_counter() - t0)
            say(f"sandbox {i}: killed {times[-1]:.3f}s after engage")
            await lockdown_client.release(client, settings, SECRET, operator)

            async def asks() -> bool:
                view = await handle.query("view")
                return view is not None and "waiting for a person" in " ".join(view["history"])

            await wait_for(asks, 60, every=0.05)
            await sandbox_client.decide(client, handle.id, ReviewDecision(approve=False, by="bench", principal=BENCH_APPROVER))
            outcome = await handle.result()
            assert outcome.status == "interrupted", outcome
    return {"running_sandbox_killed_s": round(statistics.median(times), 3),
            "running_sandbox_killed_s_max": round(max(times), 3), "sandbox_runs": runs}


def scan_times() -> dict:
    out = {}
    for kind, name, fn in (("command", "commands.jsonl", scan_command),
                           ("prompt", "prompts.jsonl", lambda t: scan_text(t, "user"))):
        rows = [json.loads(line) for line in (ROOT / "tests" / "guard_corpus" / name).read_text().splitlines()
                if line.strip()]
        for row in rows[:20]:
            fn(row["text"])  # warm up
        times = []
        for _ in range(3):
            for row in rows:
                t0 = time.perf_counter_ns()
                fn(row["text"])
                times.append((time.perf_counter_ns() - t0) / 1000)
        out[f"{kind}_scan_us_p99"] = round(p(times, 0.99), 1)
        out[f"{kind}_scan_us_p50"] = round(p(times, 0.50), 1)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--sandbox-runs", type=int, default=3)
    args = parser.parse_args()
    figures: dict = {}
    figures |= scan_times()
    async with bench_stack("security", worker_threads=64) as stack:
        settings = stack.settings.model_copy(update={
            "sandbox_dir": Path("/var/tmp/hybrid-llm-sandboxes") / f"bench-security-{os.getpid()}"})
        client = await connect(settings)
        await ensure_search_attributes(client, settings.temporal_namespace)
        engine = make_engine(settings.effective_database_url, pool_size=32)
        LockdownStore(engine, settings.task_queue).set_secret(SECRET)
        figures |= await lockdown_pause(client, settings, engine, args.requests)
        if args.sandbox_runs:
            figures |= await sandbox_kill(client, settings, engine, args.sandbox_runs)
        engine.dispose()
    figures |= egress_overhead()  # the sandboxnet helper's measurement (bench/egress.py), same run
    figures["notes"] = {"lockdown_all_paused_s": "engage called -> no LLM call running anywhere (the in-flight ones "
                                                 "stopped between tokens; queued ones are refused by the gate)",
                        "lockdown_all_parked_s": "engage called -> every request workflow parked at a checkpoint "
                                                 "(visibility Locked=true): bounded by the workload's workflow tasks"}
    figures["targets"] = {"lockdown_all_paused_s": "<= 1", "side_effects_started_after_ack": "== 0",
                          "running_sandbox_killed_s": "<= 2"}
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
