"""The worker: hosts every workflow and activity of the platform on one task queue.

Run it with `hybrid-llm worker` (or `python worker.py`); `hybrid-llm up` starts one in the background.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import uuid
from contextlib import AsyncExitStack
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

import sqlalchemy as sa

from activities.answer_stream import AnswerStreams
from activities.approvals import ApprovalActivities, ApprovalStore
from activities.blobs import BlobActivities, BlobStore
from activities.db import make_engine
from activities.embeddings import Embedder
from activities.filesystem import PlatformFiles
from activities.guard import GuardActivities
from activities.llm import LLMActivities
from activities.usage import UsageLedger
from activities.llm_pool import LLMPool
from activities.lockdown import LockdownActivities
from activities.lockdown_gate import LockdownGate
from activities.lockdown_store import LockdownStore
from activities.permissions import PermissionActivities
from activities.pool_state import SharedPool, pool_queue
from activities.preflight import PreflightActivities
from activities.rag import rag_activities
from activities.uploads import Uploads
from activities.resource_monitor import ResourceMonitor
from domain.approvals import ApprovalRules
from domain.resources import ResourceLimits
from activities.routing import RoutingActivities
from activities.scanning import ScanActivities, Scanner
from domain.registry import Registry
from hybrid_llm.policy_file import load_policy
from hybrid_llm.worker_policy import worker_policy
from hybrid_llm.registry_file import load_registry
from hybrid_llm.observability import build_runtime, configure_logging
from hybrid_llm import rag_client
from hybrid_llm.lockdown_lane import control_worker
from hybrid_llm.sandbox_worker import sandbox_activities, sweep_at_start
from hybrid_llm.settings import Settings
from hybrid_llm.temporal import connect, ensure_search_attributes

log = logging.getLogger("hybrid_llm.worker")


def build_pool(settings: Settings, registry: Registry | None = None) -> LLMPool:
    return LLMPool(registry or load_registry(settings.models_file), cooldown_s=settings.model_cooldown_s)


class WorkerGroup:
    """One worker process: the shared task queue (workflows and every activity), this worker's pool queue
    (load/complete/unload/health of the models in ITS memory) with its pool state published for routing, and the
    lockdown controller's queue."""

    def __init__(self, main: Worker, pool_worker: Worker, shared: SharedPool, control: Worker) -> None:
        self.main, self.pool_worker, self.shared, self.control = main, pool_worker, shared, control
        self._stack: AsyncExitStack | None = None

    @property
    def task_queue(self) -> str:
        return self.main.task_queue

    @property
    def pool_queue(self) -> str:
        return self.pool_worker.task_queue

    def config(self):
        return self.main.config()

    async def __aenter__(self) -> "WorkerGroup":
        async with AsyncExitStack() as stack:
            await asyncio.to_thread(self.shared.start)
            stack.push_async_callback(asyncio.to_thread, self.shared.stop)
            await stack.enter_async_context(self.control)  # the lockdown controller's own queue
            await stack.enter_async_context(self.pool_worker)
            await stack.enter_async_context(self.main)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._stack is not None
        await self._stack.aclose()


def build_worker(client: Client, settings: Settings, pool: LLMPool, task_queue: str | None = None,
                 embedder: Embedder | None = None, engine: sa.Engine | None = None) -> WorkerGroup:
    task_queue = task_queue or settings.task_queue
    engine = engine or make_engine(settings.effective_database_url)
    store = LockdownStore(engine, scope=task_queue)
    blobs = BlobStore(engine)
    gate = LockdownGate(store)
    embedder = embedder or Embedder(threads=settings.embed_threads)
    if settings.guard_model and pool.registry.get(settings.guard_model) is None:
        raise ValueError(f"HYBRID_GUARD_MODEL {settings.guard_model!r} is not in the model registry")
    # The judge (guard_model) is a model call of the workflows, not part of the scanner.
    scanner = Scanner(GuardActivities(embedder, int8=settings.guard_int8), remember=settings.scan_memory)
    shared = SharedPool(pool, engine, scope=task_queue, worker_queue=pool_queue(task_queue, uuid.uuid4().hex[:12]))
    llm = LLMActivities(pool, gate, scanner, max_concurrent=settings.worker_threads, blobs=blobs,
                        blob_threshold_bytes=settings.blob_threshold_bytes, usage=UsageLedger(engine),
                        streams=AnswerStreams.on_running_loop(client), shared=shared,
                        stream_batch_s=settings.stream_batch_ms / 1000)
    scans = ScanActivities(scanner, blobs)
    policy, files = load_policy(settings), PlatformFiles(settings.root)
    preflight = PreflightActivities(llm.snapshot, scanner, *worker_policy(settings, policy))
    approvals = ApprovalStore(engine)
    permissions = PermissionActivities(files, policy, store, gate, approvals,
                                       ApprovalRules(four_eyes=settings.approvals_four_eyes,
                                                     ttl_s=settings.approval_ttl_s))
    routing = RoutingActivities(embedder)
    lockdown = LockdownActivities(store, client, task_queue, releases_needed=settings.lockdown_release_operators,
                                  strike_threshold=settings.strike_threshold, strike_window_s=settings.strike_window_s)
    # Local activities (preflight, scans, short model calls: workflows/model_call.py) run inside workflow tasks, and a
    # task must finish within the workflow task timeout (HYBRID_WORKFLOW_TASK_TIMEOUT_S, 2 s): the worker takes no
    # more tasks than its local slots keep moving (measured: with the SDK's default of 100 tasks, a burst of 150
    # requests timed 40 tasks out).
    local_slots = 8
    workflow_task_slots = 2 * local_slots
    # Blocking activities are sync: one thread per running activity (on either queue), never more accepted than
    # there are threads, so an accepted task never sits un-heartbeated in a queue.
    executor = ThreadPoolExecutor(2 * settings.worker_threads + local_slots, thread_name_prefix="activity")
    common = dict(
        activity_executor=executor,
        max_concurrent_activities=settings.worker_threads,
        graceful_shutdown_timeout=timedelta(seconds=5),
        # Send heartbeats at 1/4 of the timeout (the SDK's default, 80%, leaves too little slack under load).
        max_heartbeat_throttle_interval=timedelta(seconds=settings.llm_heartbeat_timeout_s / 4),
    )
    main = Worker(
        client,
        task_queue=task_queue,
        # The workflows, the sealing converter, the interceptors and the workflow runner come from the client's
        # HybridPlugin.
        activities=[*llm.all(), routing.similarity, lockdown.persist, lockdown.status, lockdown.verify_release,
                    lockdown.check_release, lockdown.record_strike, lockdown.broadcast, lockdown.alert,
                    permissions.check, permissions.record_failure, permissions.write,
                    ApprovalActivities(approvals).grant, scans.scan, preflight.preflight,
                    *BlobActivities(blobs).all(),
                    *rag_activities(Uploads(files, engine, gate, policy, settings.max_upload_bytes), embedder,
                                   settings, scanner),
                    *sandbox_activities(settings, store, gate, policy, blobs=blobs).all()],
        max_concurrent_local_activities=local_slots,
        max_concurrent_workflow_tasks=workflow_task_slots,
        # A dead worker's sticky tasks move to the shared queue quickly (Temporal's default is 10 s).
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.sticky_queue_timeout_s),
        **common,
    )
    pool_worker = Worker(client, task_queue=shared.worker_queue, activities=llm.pool_bound(), **common)
    # The lockdown controller polls its own queue: an engage never waits behind the workload.
    return WorkerGroup(main, pool_worker, shared, control_worker(client, task_queue, lockdown))


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    client = await connect(settings, runtime=build_runtime(settings))
    await ensure_search_attributes(client, settings.temporal_namespace)
    pool = build_pool(settings)
    embedder = Embedder(threads=settings.embed_threads)
    # The guardrails' learned layer embeds every prompt: load MiniLM (and its int8 graph, quantised into the cache on
    # first use) in the background now, and poll at once.
    threading.Thread(target=lambda: embedder.encode(["warm up"], fast=settings.guard_int8), daemon=True,
                     name="embedder-load").start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    monitor = ResourceMonitor(client, settings.temporal_namespace, settings.task_queue,
                              ResourceLimits(memory_percent=settings.monitor_memory_percent,
                                             backlog=settings.monitor_backlog), every_s=settings.monitor_every_s)
    async with build_worker(client, settings, pool, embedder=embedder):
        await sweep_at_start(client, settings)  # sandboxes left by a dead worker whose workflow is gone
        watching = asyncio.create_task(monitor.run(stop))
        watching_uploads = rag_client.watch_uploads(client, settings, stop)  # None when watch_uploads is off
        log.info("worker polling %s on %s (models: %s)", settings.task_queue, settings.temporal_target,
                 ", ".join(m.id for m in pool.registry.models))
        await stop.wait()
        await watching
        if watching_uploads is not None:
            await watching_uploads


def main() -> None:
    settings = Settings()
    configure_logging(settings)
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
