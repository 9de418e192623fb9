"""Typed stubs for every activity, called by name: workflows import these, never an activity module.

Activity names are the deployed contract (workers register them; histories record them): keep them. Each stub
knows its input and result types (all in domain/), and a default timeout a caller may override.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Generic, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain.activity_inputs import DiscardInput, SandboxSupport, StatusRequest, WriteRequest
    from domain.approvals import ApprovalGrant, FailureCounts, FailureRecord, GrantRequest
    from domain.blobs import BlobRef, BlobRefs, MessagesBlob, TextBlobs
    from domain.guardrails import Verdict
    from domain.llm import Completion, CompletionRequest, HealthResult, LoadResult, ModelFailure, ModelRef, PoolCommand
    from domain.lockdown import EngageRequest, LockdownSignal, LockdownState, ReleaseCheck
    from domain.permissions import PermissionDecision, PermissionRequest
    from domain.pool import PoolSnapshot
    from domain.preflight import Preflight, PreflightInput
    from domain.rag import (CommitInput, CommitResult, EmbedBatch, IngestInput, PrepareResult, RemoveInput,
                            RetrievedContext, RetrieveRequest, SearchQuery, SearchResults)
    from domain.routing import SimilarityRequest, SimilarityResult
    from domain.sandbox import ConfigureRequest, CreateRequest, DeliverRequest, Delivery, ExecRequest, ExecResult, SandboxRef
    from domain.scanning import ScanRequest
    from domain.tuning import Tuning

I = TypeVar("I")
O = TypeVar("O")

# The one short retry for bookkeeping activities (database writes, signals): quick first retry, capped backoff.
BOOKKEEPING_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5),
                                maximum_attempts=10)
QUICK: dict[str, Any] = dict(start_to_close_timeout=timedelta(seconds=30), retry_policy=BOOKKEEPING_RETRY)


def llm_retry(tuning: Tuning) -> RetryPolicy:
    """How a model call is retried (transient provider errors) before the caller falls back to another model."""
    return RetryPolicy(initial_interval=timedelta(seconds=tuning.retry_initial_interval_s), backoff_coefficient=2.0,
                       maximum_interval=timedelta(seconds=10), maximum_attempts=tuning.llm_max_attempts)


def llm_options(tuning: Tuning) -> dict[str, Any]:
    """Timeouts of pool-bound calls (load, complete): heartbeats notice a dead worker within the heartbeat timeout."""
    return dict(start_to_close_timeout=timedelta(seconds=tuning.llm_start_to_close_s),
                heartbeat_timeout=timedelta(seconds=tuning.llm_heartbeat_timeout_s), retry_policy=llm_retry(tuning))


class Activity(Generic[I, O]):
    """`await stub(inp, **options)` runs the activity `name` (a local activity when `local`)."""

    def __init__(self, name: str, result_type: type | None, local: bool = False, **defaults: Any) -> None:
        self.name = name
        self.result_type = result_type
        self.local = local
        self.defaults = defaults or dict(QUICK)

    async def __call__(self, inp: I, **options: Any) -> O:
        opts = {**self.defaults, **options}
        if self.local:
            opts.pop("task_queue", None)
            opts.pop("heartbeat_timeout", None)
            return await workflow.execute_local_activity(self.name, inp, result_type=self.result_type, **opts)
        return await workflow.execute_activity(self.name, inp, result_type=self.result_type, **opts)


_LOCAL = dict(start_to_close_timeout=timedelta(seconds=60))

# LLM pool (pool-bound: load, unload, health, complete run on the worker that holds the model).
llm_pool_status = Activity[PoolCommand, PoolSnapshot]("llm.pool_status", PoolSnapshot,
                                                      start_to_close_timeout=timedelta(seconds=10))
# The same activity run locally, for routing inside a workflow task (no dispatch of its own).
llm_pool_snapshot = Activity[PoolCommand, PoolSnapshot]("llm.pool_status", PoolSnapshot, local=True,
                                                        start_to_close_timeout=timedelta(seconds=10))
llm_load = Activity[ModelRef, LoadResult]("llm.load", LoadResult)
llm_unload = Activity[ModelRef, LoadResult]("llm.unload", LoadResult)
llm_health = Activity[ModelRef, HealthResult]("llm.health", HealthResult)
llm_complete = Activity[CompletionRequest, Completion]("llm.complete", Completion)
# The same call run locally, inside the workflow task, when this worker's pool serves it quickly (model_call.py).
llm_complete_here = Activity[CompletionRequest, Completion]("llm.complete", Completion, local=True)
llm_report_failure = Activity[ModelFailure, PoolSnapshot]("llm.report_failure", PoolSnapshot, local=True,
                                                          start_to_close_timeout=timedelta(seconds=10))
# Local steps of a request (no dispatch of their own).
request_preflight = Activity[PreflightInput, Preflight]("request.preflight", Preflight, local=True, **_LOCAL)
router_similarity = Activity[SimilarityRequest, SimilarityResult](
    "router.similarity", SimilarityResult, local=True, start_to_close_timeout=timedelta(seconds=60),
    retry_policy=RetryPolicy(maximum_attempts=1))
guard_scan = Activity[ScanRequest, Verdict]("guard.scan", Verdict, local=True, **_LOCAL)
blobs_put_messages = Activity[MessagesBlob, BlobRef]("blobs.put_messages", BlobRef, local=True,
                                                     start_to_close_timeout=timedelta(seconds=30),
                                                     retry_policy=BOOKKEEPING_RETRY)
blobs_put_texts = Activity[TextBlobs, BlobRefs]("blobs.put_texts", BlobRefs, local=True,
                                              start_to_close_timeout=timedelta(seconds=30),
                                              retry_policy=BOOKKEEPING_RETRY)
# Permissions and files.
permissions_check = Activity[PermissionRequest, PermissionDecision]("permissions.check", PermissionDecision)
permissions_record_failure = Activity[FailureRecord, FailureCounts]("permissions.record_failure", FailureCounts)
files_write = Activity[WriteRequest, int]("files.write", int)
approvals_grant = Activity[GrantRequest, ApprovalGrant]("approvals.grant", ApprovalGrant, local=True)
# Lockdown.
lockdown_persist = Activity[LockdownState, None]("lockdown.persist", None)
lockdown_status = Activity[StatusRequest, LockdownState]("lockdown.status", LockdownState, local=True,
                                                         start_to_close_timeout=timedelta(seconds=10))
lockdown_verify_release = Activity[ReleaseCheck, bool]("lockdown.verify_release", bool)
lockdown_broadcast = Activity[LockdownSignal, int]("lockdown.broadcast", int)
lockdown_alert = Activity[EngageRequest, LockdownState]("lockdown.alert", LockdownState,
                                                        start_to_close_timeout=timedelta(seconds=60))
# Documents and RAG.
rag_search = Activity[SearchQuery, SearchResults]("rag.search", SearchResults)
rag_retrieve = Activity[RetrieveRequest, RetrievedContext]("rag.retrieve", RetrievedContext)
rag_prepare = Activity[IngestInput, PrepareResult]("rag.prepare", PrepareResult)
rag_embed = Activity[EmbedBatch, int]("rag.embed", int)
rag_commit = Activity[CommitInput, CommitResult]("rag.commit", CommitResult)
rag_discard = Activity[DiscardInput, int]("rag.discard", int)
rag_remove = Activity[RemoveInput, int]("rag.remove", int)
# Sandboxes.
sandbox_support = Activity[StatusRequest, SandboxSupport]("sandbox.support", SandboxSupport, local=True,
                                                          start_to_close_timeout=timedelta(seconds=30))
sandbox_create = Activity[CreateRequest, str]("sandbox.create", str)
sandbox_configure = Activity[ConfigureRequest, list[str]]("sandbox.configure", list[str])
sandbox_execute = Activity[ExecRequest, ExecResult]("sandbox.execute", ExecResult)
sandbox_deliver = Activity[DeliverRequest, list[Delivery]]("sandbox.deliver", list[Delivery])
sandbox_destroy = Activity[SandboxRef, bool]("sandbox.destroy", bool)
