"""LLM activities: pool status, load/unload/health and completions, all blocking work off the event loop.

Every method is a sync activity run on the worker's thread pool. Long calls run on a helper thread
while the activity thread heartbeats, so a dead worker is noticed within the heartbeat timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.llm_pool import LLMPool
from activities.lockdown_gate import LockdownGate
from activities.providers import ProviderError
from domain.llm import (
    Completion,
    CompletionRequest,
    HealthResult,
    LoadResult,
    ModelFailure,
    ModelRef,
    PoolCommand,
)
from domain.pool import PoolSnapshot

T = TypeVar("T")


def _heartbeat() -> None:
    if activity.in_activity():
        activity.heartbeat()


def _as_application_error(e: ProviderError) -> ApplicationError:
    return ApplicationError(str(e), type=e.kind, non_retryable=not e.retryable)


class LLMActivities:
    def __init__(self, pool: LLMPool, gate: LockdownGate, heartbeat_every_s: float = 0.25) -> None:
        self.pool = pool
        self.gate = gate
        self._every = heartbeat_every_s
        self._calls = ThreadPoolExecutor(thread_name_prefix="llm-call")

    def _run_heartbeating(self, fn: Callable[[], T]) -> T:
        future: Future[T] = self._calls.submit(fn)
        while True:
            try:
                return future.result(timeout=self._every)
            except TimeoutError:
                _heartbeat()

    @activity.defn(name="llm.pool_status")
    def pool_status(self, command: PoolCommand) -> PoolSnapshot:
        return self.pool.snapshot()

    @activity.defn(name="llm.load")
    def load(self, ref: ModelRef) -> LoadResult:
        self.gate.check(f"loading {ref.model_id}")
        try:
            load_ms, _ = self._run_heartbeating(lambda: self.pool.ensure_loaded(ref.model_id))
        except ProviderError as e:
            if e.kind == "ModelUnavailable":
                self.pool.mark_health(ref.model_id, str(e))
            raise _as_application_error(e) from None
        status = self.pool.status(ref.model_id)
        return LoadResult(model_id=ref.model_id, loaded=status.loaded, load_ms=round(load_ms, 1),
                          memory_bytes=status.memory_bytes)

    @activity.defn(name="llm.unload")
    def unload(self, ref: ModelRef) -> LoadResult:
        try:
            self.pool.unload(ref.model_id)
        except ProviderError as e:
            raise _as_application_error(e) from None
        return LoadResult(model_id=ref.model_id, loaded=False, load_ms=0.0, memory_bytes=0)

    @activity.defn(name="llm.health")
    def health(self, ref: ModelRef) -> HealthResult:
        """A real check: load if needed and generate one token."""
        t0 = time.perf_counter()
        try:
            status = self.pool.status(ref.model_id)
            if not status.spec.enabled:
                return HealthResult(model_id=ref.model_id, healthy=False, detail=status.unavailable_reason())
            self._run_heartbeating(lambda: self.pool.ensure_loaded(ref.model_id))
            from domain.requests import ChatMessage

            with self.pool.in_flight(ref.model_id, wait=_heartbeat) as provider:
                self._run_heartbeating(lambda: provider.complete([ChatMessage(role="user", content="ping")], 1, 0.0))
        except ProviderError as e:
            if e.kind == "UnknownModel":
                raise _as_application_error(e) from None
            self.pool.mark_health(ref.model_id, str(e))
            return HealthResult(model_id=ref.model_id, healthy=False, detail=str(e),
                                latency_ms=round((time.perf_counter() - t0) * 1000, 1))
        self.pool.mark_health(ref.model_id, None)
        return HealthResult(model_id=ref.model_id, healthy=True, latency_ms=round((time.perf_counter() - t0) * 1000, 1))

    @activity.defn(name="llm.complete")
    def complete(self, req: CompletionRequest) -> Completion:
        self.gate.check(f"an LLM call to {req.model_id}")
        try:
            load_ms, _ = self._run_heartbeating(lambda: self.pool.ensure_loaded(req.model_id))
            with self.pool.in_flight(req.model_id, wait=_heartbeat) as provider:
                t0 = time.perf_counter()
                out = self._run_heartbeating(
                    lambda: provider.complete(req.messages, req.max_tokens, req.temperature))
                inference_ms = (time.perf_counter() - t0) * 1000
        except ProviderError as e:
            if e.kind == "ModelUnavailable":
                self.pool.mark_health(req.model_id, str(e))
            raise _as_application_error(e) from None
        self.pool.report_success(req.model_id)
        return Completion(model_id=req.model_id, text=out.text, prompt_tokens=out.prompt_tokens,
                          completion_tokens=out.completion_tokens, load_ms=round(load_ms, 1),
                          inference_ms=round(inference_ms, 1))

    @activity.defn(name="llm.report_failure")
    def report_failure(self, failure: ModelFailure) -> PoolSnapshot:
        """Cool a failing model down so other requests avoid it for a while; returns the new snapshot."""
        self.pool.report_failure(failure.model_id, failure.error)
        return self.pool.snapshot()

    def all(self) -> list[Callable]:
        return [self.pool_status, self.load, self.unload, self.health, self.complete, self.report_failure]
