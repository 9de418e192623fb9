"""Publish a generating answer to the request workflow's stream, from a sync activity's thread.

Sync activities run on worker threads; the Temporal client lives on the worker's event loop. A writer queues each
batch to a sender task on that loop, which signals the workflow's stream (temporalio's Workflow Streams publish
signal, in its wire format, with its per-publisher sequence so a resent batch is dropped as a duplicate). Batching
is ours (domain/streaming.py), so the sender sends what is queued, in order, one signal at a time.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from datetime import timedelta

from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.workflow_streams import PollInput, PollResult, PublishEntry, PublishInput
from temporalio.service import RPCError, RPCStatusCode

from domain.streaming import ANSWER_TOPIC, AnswerChunk, assemble

PUBLISH = "__temporal_workflow_stream_publish"
POLL = "__temporal_workflow_stream_poll"
TIMEOUT_S = 30.0
RPC_TIMEOUT = timedelta(seconds=5)
_FINAL = (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION,
          RPCStatusCode.PERMISSION_DENIED)


def _wire(payload: Payload) -> str:
    return base64.b64encode(payload.SerializeToString()).decode("ascii")


def _unwire(data: str) -> Payload:
    payload = Payload()
    payload.ParseFromString(base64.b64decode(data))
    return payload


class AnswerWriter:
    """One attempt's publisher: `write(chunk)` returns at once; `flush()` waits until what was written is
    delivered; `close()` returns once every batch is delivered."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: Client, handle: WorkflowHandle) -> None:
        self._loop = loop
        self._converter = client.data_converter.payload_converter
        self._handle = handle
        self._publisher = uuid.uuid4().hex[:16]
        # Opening does not wait for the loop (the model's prompt is evaluated meanwhile): the queue binds to the
        # loop on first use, and only the loop touches it (writes arrive by call_soon_threadsafe).
        self._queue: asyncio.Queue[AnswerChunk | None] = asyncio.Queue()
        self._written = 0
        self._delivered = 0
        self._progress = threading.Condition()
        self._sender = asyncio.run_coroutine_threadsafe(self._send_all(), loop)

    def write(self, chunk: AnswerChunk) -> None:
        self._written += 1
        self._loop.call_soon_threadsafe(self._queue.put_nowait, chunk)

    def flush(self, timeout_s: float) -> bool:
        """Wait (at most `timeout_s`) until every chunk written so far is delivered; False if it was not (yet)."""
        deadline = time.monotonic() + timeout_s
        with self._progress:
            while self._delivered < self._written and not self._sender.done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._progress.wait(min(left, 0.05))
            return self._delivered >= self._written

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, None)
        self._sender.result(TIMEOUT_S)

    async def _send_all(self) -> None:
        sequence, done = 0, False
        while not done:
            first = await self._queue.get()
            batch = [] if first is None else [first]
            done = first is None
            while not done and not self._queue.empty():  # whatever queued meanwhile goes in the same signal
                item = self._queue.get_nowait()
                done = item is None
                if item is not None:
                    batch.append(item)
            if batch:
                sequence += 1
                await self._signal(PublishInput(
                    items=[PublishEntry(topic=ANSWER_TOPIC, data=_wire(self._converter.to_payloads([c])[0]))
                           for c in batch],
                    publisher_id=self._publisher, sequence=sequence))
                with self._progress:
                    self._delivered += len(batch)
                    self._progress.notify_all()

    async def _signal(self, batch: PublishInput) -> None:
        delay = 0.05
        while True:
            try:
                await self._handle.signal(PUBLISH, batch, rpc_timeout=RPC_TIMEOUT)
                return
            except RPCError as e:
                if e.status in _FINAL:
                    raise
                await asyncio.sleep(delay)  # resent with the same sequence: delivered at most once
                delay = min(delay * 2, 1.0)


class AnswerStreams:
    def __init__(self, client: Client, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop

    @classmethod
    def on_running_loop(cls, client: Client) -> "AnswerStreams | None":
        """Bound to the caller's event loop (the worker's); None outside one (then answers are not streamed)."""
        try:
            return cls(client, asyncio.get_running_loop())
        except RuntimeError:
            return None

    def published(self, workflow_id: str) -> str:
        """The answer text already in the workflow's stream (what an earlier attempt sent)."""
        return asyncio.run_coroutine_threadsafe(self._published(workflow_id), self._loop).result(TIMEOUT_S)

    async def _published(self, workflow_id: str) -> str:
        handle = self._client.get_workflow_handle(workflow_id)
        converter = self._client.data_converter.payload_converter
        chunks: list[AnswerChunk] = []
        offset = 0
        while True:
            result = await handle.query(POLL, PollInput(topics=[ANSWER_TOPIC], from_offset=offset),
                                        result_type=PollResult)
            chunks += [converter.from_payload(_unwire(item.data), AnswerChunk) for item in result.items]
            offset = result.next_offset
            if not result.more_ready:
                return assemble(chunks)

    def open(self, workflow_id: str) -> AnswerWriter:
        return AnswerWriter(self._loop, self._client, self._client.get_workflow_handle(workflow_id))
