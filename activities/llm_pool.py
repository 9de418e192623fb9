"""The worker's LLM pool: providers by model id, lazy loading, in-flight counts, memory and cooldowns.

One pool per worker process. Its state is runtime state (which models are in memory); the decisions
made on it are recorded by workflows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psutil

from activities.providers import Provider, ProviderError, make_provider
from domain.pool import ModelStatus, PoolSnapshot
from domain.registry import ModelSpec, Registry


SPEED_WEIGHT = 0.3  # the weight of the newest call in the moving average of a model's time per token


class _Slot:
    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.load_lock = threading.Lock()
        self.concurrency = threading.BoundedSemaphore(provider.spec.max_concurrency)
        self.in_flight = 0
        self.memory_bytes = 0
        self.failures = 0
        self.last_error: str | None = None
        self.cooldown_until = 0.0
        self.unhealthy: str | None = None
        self.ms_per_token: float | None = None  # moving average of recent calls' generation time per output token


class LLMPool:
    def __init__(
        self,
        registry: Registry,
        cooldown_s: float = 60.0,
        provider_factory: Callable[[ModelSpec], Provider] = make_provider,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._slots = {spec.id: _Slot(provider_factory(spec)) for spec in registry.models}
        self._lock = threading.Lock()

    def _slot(self, model_id: str) -> _Slot:
        try:
            return self._slots[model_id]
        except KeyError:
            known = ", ".join(self._slots)
            raise ProviderError(f"unknown model {model_id!r} (known: {known})", retryable=False,
                                kind="UnknownModel") from None

    def status(self, model_id: str) -> ModelStatus:
        slot = self._slot(model_id)
        spec = slot.provider.spec
        problem = slot.unhealthy or (slot.provider.check_available() if spec.enabled else None)
        remaining = max(0.0, slot.cooldown_until - self._clock())
        return ModelStatus(
            spec=spec,
            loaded=slot.provider.loaded,
            healthy=problem is None,
            health_detail=problem,
            memory_bytes=slot.memory_bytes,
            in_flight=slot.in_flight,
            cooling_down=remaining > 0,
            cooldown_remaining_s=round(remaining, 1),
            failures=slot.failures,
            last_error=slot.last_error,
            ms_per_token=None if slot.ms_per_token is None else round(slot.ms_per_token, 3),
        )

    def snapshot(self) -> PoolSnapshot:
        return PoolSnapshot(models=[self.status(model_id) for model_id in self._slots])

    def ensure_loaded(self, model_id: str) -> tuple[float, bool]:
        """Load if needed; returns (milliseconds spent loading, whether this call loaded it)."""
        slot = self._slot(model_id)
        if slot.provider.loaded:
            return 0.0, False
        with slot.load_lock:
            if slot.provider.loaded:
                return 0.0, False
            rss_before = psutil.Process().memory_info().rss
            t0 = time.perf_counter()
            slot.provider.load()
            load_ms = (time.perf_counter() - t0) * 1000
            slot.memory_bytes = max(0, psutil.Process().memory_info().rss - rss_before)
            return load_ms, True

    def unload(self, model_id: str) -> None:
        slot = self._slot(model_id)
        with slot.load_lock:
            slot.provider.unload()
            slot.memory_bytes = 0

    @contextmanager
    def in_flight(self, model_id: str, wait: Callable[[], None] = lambda: None) -> Iterator[Provider]:
        """Count a call as in flight and hold one of the model's concurrency slots.

        `wait` is called while queueing for a slot (the activity heartbeats from it).
        """
        slot = self._slot(model_id)
        with self._lock:
            slot.in_flight += 1
        try:
            while not slot.concurrency.acquire(timeout=0.25):
                wait()
            try:
                yield slot.provider
            finally:
                slot.concurrency.release()
        finally:
            with self._lock:
                slot.in_flight -= 1

    def report_failure(self, model_id: str, error: str) -> None:
        slot = self._slot(model_id)
        with self._lock:
            slot.failures += 1
            slot.last_error = error[:500]
            slot.cooldown_until = self._clock() + self.cooldown_s

    def report_success(self, model_id: str, inference_ms: float | None = None, completion_tokens: int = 0) -> None:
        """A call succeeded; with its timing, the model's time per output token here is updated (a moving average
        over recent calls, the prompt's processing included: what the router expects of the next call)."""
        slot = self._slot(model_id)
        with self._lock:
            slot.unhealthy = None
            slot.last_error = None
            slot.cooldown_until = 0.0
            if inference_ms is not None:
                sample = max(0.0, inference_ms) / max(1, completion_tokens)
                previous = slot.ms_per_token
                slot.ms_per_token = sample if previous is None else previous + SPEED_WEIGHT * (sample - previous)

    def mark_health(self, model_id: str, problem: str | None) -> None:
        self._slot(model_id).unhealthy = problem
