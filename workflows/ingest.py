"""IngestWorkflow: index one stored version of an upload, or remove a deleted file's chunks.

prepare (find the version; unchanged / superseded end here) -> embed in batches (staged, invisible to search;
progress query) -> commit (swap the document's chunks in one transaction). A failure discards the staged chunks:
the previous version stays searchable. History carries ids and content hashes only.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.activity_inputs import DiscardInput
    from workflows import activity_stubs as act
    from domain.rag import CommitInput, EmbedBatch, IngestInput, IngestProgress, IngestResult, RemoveInput
    from workflows.pausable import Pausable

_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10),
                     maximum_attempts=5)
_QUICK = dict(start_to_close_timeout=timedelta(seconds=120), retry_policy=_RETRY)
# Embedding a batch is CPU work: generous, heartbeating.
_EMBED = dict(start_to_close_timeout=timedelta(minutes=30), heartbeat_timeout=timedelta(minutes=5),
              retry_policy=_RETRY)


@workflow.defn(name="IngestWorkflow")
class IngestWorkflow(Pausable):
    def __init__(self) -> None:
        super().__init__()
        self._progress = IngestProgress()

    @workflow.query(name="progress")
    def progress(self) -> IngestProgress:
        if self.paused:
            return self._progress.model_copy(update={"stage": "paused"})
        return self._progress

    @workflow.run
    async def run(self, inp: IngestInput) -> IngestResult:
        self._progress = IngestProgress(path=inp.path, version=inp.version, stage="preparing")
        await self.checkpoint()
        if inp.sha256 is None:
            self._progress.stage = "removing"
            removed = await self.guarded(lambda: act.rag_remove(RemoveInput(path=inp.path, version=inp.version),
                                                                **_QUICK))
            self._progress.stage = "done"
            return IngestResult(path=inp.path, version=inp.version, sha256=None, action="removed", chunks=0,
                                removed=removed)

        try:
            prepared = await act.rag_prepare(inp, **_QUICK)
        except ActivityError as e:
            self._progress.stage = "failed"
            raise _failure(inp, e) from None
        if prepared.action != "index":
            self._progress = self._progress.model_copy(update={"stage": "done", "done": prepared.chunks,
                                                               "total": prepared.chunks})
            return IngestResult(path=inp.path, version=inp.version, sha256=inp.sha256, action=prepared.action,
                                chunks=prepared.chunks)
        self._progress = self._progress.model_copy(update={"stage": "embedding", "total": prepared.chunks})
        try:
            for start in range(0, prepared.chunks, inp.batch_size):
                await self.checkpoint()
                batch = EmbedBatch(version_id=prepared.version_id, sha256=inp.sha256, start=start,
                                   end=min(start + inp.batch_size, prepared.chunks))
                self._progress.done += await act.rag_embed(batch,
                                                                              **_EMBED)
            self._progress.stage = "committing"
            committed = await self.guarded(lambda: act.rag_commit(CommitInput(document_id=prepared.document_id,
                                                     version_id=prepared.version_id), **_QUICK))
        except ActivityError as e:
            self._progress.stage = "failed"
            failure = _failure(inp, e)
            await act.rag_discard(DiscardInput(version_id=prepared.version_id, error=failure.message),
                **_QUICK)
            raise failure from None
        self._progress.stage = "done"
        return IngestResult(path=inp.path, version=inp.version, sha256=inp.sha256, action=committed.action,
                            chunks=committed.chunks, removed=committed.removed)


def _failure(inp: IngestInput, e: ActivityError) -> ApplicationError:
    cause = e.cause
    message = str(cause) if cause is not None else str(e)
    kind = cause.type if isinstance(cause, ApplicationError) and cause.type else "IngestionFailed"
    return ApplicationError(f"{inp.path} v{inp.version}: {message}", type=kind, non_retryable=True)
