"""LLM activities: pool status, load/unload/health and completions, all blocking work off the event loop.

Every method is a sync activity run on the worker's thread pool. Long calls run on a helper thread
while the activity thread heartbeats, so a dead worker is noticed within the heartbeat timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import interrupts
from activities.answer_stream import AnswerStreams, AnswerWriter
from activities.blobs import BlobNotFound, BlobStore
from activities.llm_pool import LLMPool
from activities.pool_state import SharedPool
from activities.lockdown_gate import LockdownGate
from activities.providers import ProviderError
from activities.scanning import Scanner
from activities.usage import UsageLedger, cloud_cost
from domain.llm import (
    MISPLACED,
    Completion,
    CompletionRequest,
    HealthResult,
    LoadResult,
    ModelFailure,
    ModelRef,
    PoolCommand,
)
from domain.blobs import messages_bytes, preview, sha256_of
from domain.pool import PoolSnapshot
from domain.requests import ChatMessage
from domain.scanning import ScanRequest
from domain.streaming import AnswerChunk, Batcher

log = logging.getLogger("hybrid_llm.llm")

T = TypeVar("T")
# How long the generation waits for its first streamed text to be delivered (time to first token), at most.
FIRST_FLUSH_S = 1.0


def _heartbeat() -> None:
    if activity.in_activity():
        activity.heartbeat()


def _as_application_error(e: ProviderError) -> ApplicationError:
    return ApplicationError(str(e), type=e.kind, non_retryable=not e.retryable)


class LLMActivities:
    def __init__(self, pool: LLMPool, gate: LockdownGate, scanner: Scanner, max_concurrent: int = 16,
                 heartbeat_every_s: float = 0.25, blobs: BlobStore | None = None,
                 blob_threshold_bytes: int = 4096, usage: UsageLedger | None = None,
                 streams: AnswerStreams | None = None, shared: SharedPool | None = None,
                 stream_batch_s: float = 0.2) -> None:
        self.pool = pool
        self.stream_batch_s = stream_batch_s  # a streamed answer's batches come at most this often
        self.usage = usage
        self.streams = streams
        self.shared = shared  # the deployment's pool (several workers); None: this worker's pool alone
        self.blobs = blobs
        self.blob_threshold_bytes = blob_threshold_bytes
        self.gate = gate
        self.scanner = scanner
        self._every = heartbeat_every_s
        # One call thread per concurrent activity (and spare): a call never queues for a thread, so an
        # admitted call starts at once and no activity waits un-heartbeated.
        self._calls = ThreadPoolExecutor(max_workers=max_concurrent * 2, thread_name_prefix="llm-call")

    def _run_heartbeating(self, fn: Callable[[], T]) -> T:
        return self._wait(self._calls.submit(fn))

    def _start(self, fn: Callable[..., T], *args, run: interrupts.Running | None = None) -> Future[T]:
        """Submit and return only once `fn` is running: inside a gate admission, "admitted" means "started".
        With `run`, the provider sees its stop switch (interrupts.current_stop) and stops between tokens."""
        running = threading.Event()

        def run_fn() -> T:
            running.set()
            with interrupts.bind(run):
                return fn(*args)

        future = self._calls.submit(run_fn)
        running.wait()
        return future

    def _wait(self, future: Future[T], run: interrupts.Running | None = None) -> T:
        try:
            return self._wait_for(future, run)
        except BaseException:
            if run is not None:  # the activity is gone (cancelled, timed out): its generation stops as well
                run.stop.set()
            raise

    def _wait_for(self, future: Future[T], run: interrupts.Running | None) -> T:
        while True:
            if run is not None and run.interrupted:
                try:  # the provider stops between tokens: give it a moment to let go of the model
                    future.result(timeout=2.0)
                except Exception:  # noqa: BLE001 - whatever it returns or raises, the call was interrupted
                    pass
                raise run.error()
            try:
                result = future.result(timeout=self._every)
            except TimeoutError:
                _heartbeat()
                continue
            if run is not None:
                run.raise_if_interrupted()  # stopped early: a partial answer is no answer
            return result

    def snapshot(self) -> PoolSnapshot:
        return self.shared.snapshot() if self.shared is not None else self.pool.snapshot()

    def _publish(self) -> None:
        if self.shared is not None:
            self.shared.publish()

    @activity.defn(name="llm.pool_status")
    def pool_status(self, command: PoolCommand) -> PoolSnapshot:
        return self.snapshot()

    @activity.defn(name="llm.load")
    def load(self, ref: ModelRef) -> LoadResult:
        try:
            with self.gate.admit(f"loading {ref.model_id}"):
                started = self._start(self.pool.ensure_loaded, ref.model_id)
            load_ms, _ = self._wait(started)
        except ProviderError as e:
            if e.kind == "ModelUnavailable":
                self.pool.mark_health(ref.model_id, str(e))
                self._publish()
            raise _as_application_error(e) from None
        self._publish()
        status = self.pool.status(ref.model_id)
        return LoadResult(model_id=ref.model_id, loaded=status.loaded, load_ms=round(load_ms, 1),
                          memory_bytes=status.memory_bytes)

    @activity.defn(name="llm.unload")
    def unload(self, ref: ModelRef) -> LoadResult:
        try:
            self.pool.unload(ref.model_id)
        except ProviderError as e:
            raise _as_application_error(e) from None
        self._publish()
        return LoadResult(model_id=ref.model_id, loaded=False, load_ms=0.0, memory_bytes=0)

    @activity.defn(name="llm.health")
    def health(self, ref: ModelRef) -> HealthResult:
        """A real check: load if needed and generate one token."""
        t0 = time.perf_counter()
        try:
            status = self.pool.status(ref.model_id)
            if not status.spec.enabled:
                return HealthResult(model_id=ref.model_id, healthy=False, detail=status.unavailable_reason())
            with self.pool.in_flight(ref.model_id, wait=_heartbeat) as provider:
                ping = CompletionRequest(model_id=ref.model_id, messages=[ChatMessage(role="user", content="ping")],
                                         max_tokens=1, temperature=0.0)
                with self.gate.admit(f"a health check of {ref.model_id}"):
                    started = self._start(self._load_and_complete, provider, ping)
                self._wait(started)
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
        if req.placement is not None and req.placement != (self.shared.worker_queue if self.shared else None):
            raise ApplicationError(f"this call was placed on {req.placement}, not on this worker", type=MISPLACED,
                                   non_retryable=True)
        asked = req  # as the workflow sent it (messages, or their hash when they went by reference)
        req = self._resolve_messages(req)
        try:
            with self.gate.interrupts.running(f"an LLM call to {req.model_id}") as run, \
                    self.pool.in_flight(req.model_id, wait=_heartbeat) as provider:
                t0 = time.perf_counter()
                if req.stream or req.stop or req.json_mode:
                    call, args = self._load_and_stream, (provider, req, *self._stream_to(req))
                else:
                    call, args = self._load_and_complete, (provider, req)
                with self.gate.admit(f"an LLM call to {req.model_id}", run=run):
                    started = self._start(call, *args, run=run)
                load_ms, out = self._wait(started, run)
                inference_ms = (time.perf_counter() - t0) * 1000 - load_ms
        except ProviderError as e:
            if e.kind == "ModelUnavailable":
                self.pool.mark_health(req.model_id, str(e))
            raise _as_application_error(e) from None
        self.pool.report_success(req.model_id, inference_ms, out.completion_tokens)
        # The spend is written (PostgreSQL) while the output is scanned; both finish before the activity returns.
        recorded = self._calls.submit(self._record_usage, req, out.prompt_tokens, out.completion_tokens,
                                      activity.info().workflow_id if activity.in_activity() else None)
        verdict = None
        if req.scan_output:  # every model output passes the guardrails before anyone sees it
            verdict = self.scanner.scan(ScanRequest(text=out.text, kind="prompt", source="model_output",
                                                    semantic=req.scan_semantic))
        recorded.result()
        text, text_ref = out.text, None
        text_bytes = out.text.encode("utf-8")
        if self.blobs is not None and len(text_bytes) > self.blob_threshold_bytes:
            text_ref = self.blobs.put(text_bytes)  # audit can show it by hash; by-ref callers pass it on
            if req.output_by_ref:
                text = preview(out.text)
        return Completion(model_id=req.model_id, text=text, prompt_tokens=out.prompt_tokens,
                          completion_tokens=out.completion_tokens, load_ms=round(load_ms, 1),
                          inference_ms=round(inference_ms, 1), verdict=verdict,
                          prompt_sha256=req.messages_ref or sha256_of(messages_bytes(req.messages)),
                          text_sha256=text_ref or sha256_of(text_bytes), text_ref=text_ref,
                          finish_reason=out.finish_reason,
                          # A local activity's input is not in history: the result carries it for the audit.
                          request=asked if activity.in_activity() and activity.info().is_local else None,
                          served_by=self.shared.worker_queue if self.shared is not None else None)

    def _record_usage(self, req: CompletionRequest, prompt_tokens: int, completion_tokens: int,
                      workflow_id: str | None) -> None:
        """Every call's spend in the usage ledger (the daily budgets read it); never fails the call."""
        if self.usage is None:
            return
        spec = self.pool.registry.get(req.model_id)
        cost = cloud_cost(spec.model, prompt_tokens, completion_tokens) if spec is not None and not spec.local else 0.0
        try:
            self.usage.record(model_id=req.model_id, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                              request_id=req.request_id, workflow_id=workflow_id, cost_usd=cost)
        except Exception:  # noqa: BLE001 - the answer matters more than the bookkeeping
            log.warning("could not record usage of %s for request %s", req.model_id, req.request_id, exc_info=True)

    def _resolve_messages(self, req: CompletionRequest) -> CompletionRequest:
        """Messages sent by reference (large prompts) are read from the blob store; the ref stays for audit."""
        if req.messages or req.messages_ref is None:
            return req
        if self.blobs is None:
            raise ApplicationError("this worker has no blob store to resolve messages_ref", type="NoBlobStore")
        try:
            messages = self.blobs.get_messages(req.messages_ref)
        except BlobNotFound as e:
            raise ApplicationError(str(e), type="BlobNotFound", non_retryable=True) from None
        if sha256_of(messages_bytes(messages)) != req.messages_ref:
            raise ApplicationError(f"blob {req.messages_ref} does not match its hash", type="BlobCorrupt",
                                   non_retryable=True)
        return req.model_copy(update={"messages": messages})

    def _load_and_complete(self, provider, req: CompletionRequest):
        load_ms, _ = self.pool.ensure_loaded(req.model_id)
        return load_ms, provider.complete(req.messages, req.max_tokens, req.temperature, req.json_schema)

    def _stream_to(self, req: CompletionRequest) -> tuple[str | None, bool]:
        """The workflow whose answer stream this call publishes to (the calling workflow), if any, and whether part
        of the answer may be there already (an earlier attempt, or an earlier model)."""
        if not req.stream or self.streams is None or not activity.in_activity():
            return None, False
        info = activity.info()
        return info.workflow_id, req.resume or info.attempt > 1

    def _load_and_stream(self, provider, req: CompletionRequest, workflow_id: str | None, resume: bool):
        """Generate, publishing batches as they come. What an earlier attempt (or model) already published is the
        prefix this call continues, never sent twice. Each batch is published only once the text so far passed the
        guardrails; a blocked batch stops the generation (the whole output is scanned again as usual)."""
        writer: AnswerWriter | None = None
        prefix = ""
        if workflow_id is not None and self.streams is not None:
            if resume:
                prefix = self.streams.published(workflow_id)
            writer = self.streams.open(workflow_id)
        batcher, sent = Batcher(interval_s=self.stream_batch_s), prefix

        def publish(text: str | None) -> bool:
            nonlocal sent
            if not text or writer is None:
                return True
            if req.scan_output:
                started = time.perf_counter()
                verdict = self.scanner.scan(ScanRequest(text=sent + text, kind="prompt", source="model_output",
                                                        semantic=req.scan_semantic))
                batcher.spent(time.perf_counter() - started)  # the next scan waits in proportion (a long answer)
                if verdict.verdict == "block":
                    return False
            writer.write(AnswerChunk(start=len(sent), text=text))
            if sent == prefix:  # the first text of this call: the model waits until it is delivered, so the
                writer.flush(FIRST_FLUSH_S)  # worker's loop that sends it does not compete with the generation
            sent += text
            return True

        try:
            load_ms, _ = self.pool.ensure_loaded(req.model_id)
            out = provider.stream(req.messages, req.max_tokens, req.temperature, req.json_schema,
                                  json_mode=req.json_mode, stop=req.stop, seed=req.seed, prefix=prefix,
                                  on_text=(lambda piece: publish(batcher.add(piece, time.monotonic())))
                                  if writer is not None else None)
            if out.finish_reason != "content_filter":
                publish(batcher.take(time.monotonic()))
        finally:
            if writer is not None:
                writer.close()
        return load_ms, out

    @activity.defn(name="llm.report_failure")
    def report_failure(self, failure: ModelFailure) -> PoolSnapshot:
        """Cool a failing model down (on the worker it failed on) so other requests avoid it for a while; returns
        the new snapshot. Run as a local activity: the cooldown is shared through the pool state."""
        if self.shared is not None:
            self.shared.cool_down(failure.model_id, failure.error, failure.task_queue)
        else:
            self.pool.report_failure(failure.model_id, failure.error)
        return self.snapshot()

    def all(self) -> list[Callable]:
        return [self.pool_status, self.load, self.unload, self.health, self.complete, self.report_failure]

    def pool_bound(self) -> list[Callable]:
        """The activities that must run on the worker whose pool routing chose (its own task queue)."""
        return [self.load, self.unload, self.health, self.complete]
