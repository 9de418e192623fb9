"""Uploads, ingestion and search from the entry points (CLI, API, the worker's watcher) and tests.

The entry point holds the bytes: it versions them in uploads/ itself (validated first, through the lockdown gate),
then starts an IngestWorkflow that carries only the path, version and content hash. Search runs as a workflow so
that embedding the query happens on a worker (no torch in the CLI or the API).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError

from activities.uploads import Uploads
from domain.rag import IngestInput, IngestProgress, IngestResult, SearchQuery, SearchResults, UploadReceipt, \
    ingest_workflow_id
from hybrid_llm.settings import Settings
from workflows.ingest import IngestWorkflow
from workflows.search import SearchWorkflow

log = logging.getLogger("hybrid_llm.rag")


class IngestFailed(RuntimeError):
    """The ingestion workflow failed; `kind` is its error type (BadUpload, LockedDown, ...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def build_uploads(settings: Settings, engine=None) -> Uploads:
    """Uploads for an entry point: the platform root, the database, the gate, the policy and the size limit."""
    from activities.db import make_engine
    from activities.filesystem import PlatformFiles
    from activities.lockdown_gate import LockdownGate
    from activities.lockdown_store import LockdownStore
    from hybrid_llm.policy_file import load_policy

    engine = engine or make_engine(settings.effective_database_url, pool_size=2)
    policy = load_policy(settings)
    assert settings.root is not None
    return Uploads(PlatformFiles(settings.root), engine, LockdownGate(LockdownStore(engine, settings.task_queue)),
                   policy, max_bytes=settings.max_upload_bytes)


async def start_ingest(client: Client, settings: Settings, receipt: UploadReceipt) -> WorkflowHandle:
    """One workflow per (path, version): a repeated start joins the running one or re-checks (a no-op)."""
    return await client.start_workflow(
        IngestWorkflow.run, IngestInput(path=receipt.path, version=receipt.version, sha256=receipt.sha256),
        id=ingest_workflow_id(receipt.path, receipt.version), task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE, result_type=IngestResult)


async def upload(client: Client, settings: Settings, uploads: Uploads, name: str, data: bytes
                 ) -> tuple[UploadReceipt, WorkflowHandle]:
    receipt = await asyncio.to_thread(uploads.put, name, data)
    return receipt, await start_ingest(client, settings, receipt)


async def restore(client: Client, settings: Settings, uploads: Uploads, name: str, version: int
                  ) -> tuple[UploadReceipt, WorkflowHandle]:
    receipt = await asyncio.to_thread(uploads.restore, name, version)
    return receipt, await start_ingest(client, settings, receipt)


async def wait(handle: WorkflowHandle, on_progress: Callable[[IngestProgress], None] | None = None,
               every_s: float = 0.2) -> IngestResult:
    """The ingestion's result, reporting progress meanwhile; raises IngestFailed."""
    result = asyncio.ensure_future(handle.result())
    try:
        while on_progress is not None and not result.done():
            try:
                on_progress(await handle.query(IngestWorkflow.progress, result_type=IngestProgress))
            except Exception as e:  # noqa: BLE001 - progress is best effort (not started yet, just finished)
                log.debug("no progress yet: %s", e)
            await asyncio.wait([result], timeout=every_s)
        return await result
    except WorkflowFailureError as e:
        cause = e.cause
        if isinstance(cause, ApplicationError):
            raise IngestFailed(cause.type or "IngestionFailed", cause.message) from None
        raise IngestFailed("IngestionFailed", str(cause or e)) from None


async def ingest_changes(client: Client, settings: Settings, uploads: Uploads, paths: list[str]
                         ) -> list[WorkflowHandle]:
    """The watcher's handler: version each changed path and start ingestion for new versions and deletions."""
    from domain.rag import BadUpload

    handles = []
    for path in paths:
        try:
            receipt = await asyncio.to_thread(uploads.snapshot, path)
        except BadUpload as e:
            log.warning("not indexing %s: %s", path, e)
            continue
        except Exception as e:  # noqa: BLE001 - refused path, lockdown, database: say so, keep watching
            log.warning("cannot version %s: %s", path, e)
            continue
        if receipt is not None and receipt.created:
            log.info("%s changed: ingesting v%d", path, receipt.version)
            handles.append(await start_ingest(client, settings, receipt))
    return handles


async def search(client: Client, settings: Settings, query: SearchQuery) -> SearchResults:
    return await client.execute_workflow(SearchWorkflow.run, query, id=f"search-{uuid.uuid4().hex}",
                                         task_queue=settings.task_queue, result_type=SearchResults,
                                         execution_timeout=timedelta(seconds=120))


def watch_uploads(client: Client, settings: Settings, stop: asyncio.Event, uploads: Uploads | None = None
                  ) -> asyncio.Task | None:
    """The worker's uploads/ watcher as a task (None when `settings.watch_uploads` is off)."""
    if not settings.watch_uploads:
        return None
    from activities.rag.watcher import UploadWatcher

    assert settings.root is not None
    uploads = uploads or build_uploads(settings)
    watcher = UploadWatcher(settings.root, lambda paths: ingest_changes(client, settings, uploads, paths),
                            debounce_ms=settings.watch_debounce_ms)
    return asyncio.create_task(watcher.run(stop), name="uploads-watcher")
