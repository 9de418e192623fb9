"""Follow a request's answer as it is generated (the API's SSE, the console, tests and the benchmark).

Reads the request workflow's answer stream (workflows/streaming.py) from any character offset: each character is
yielded once, whatever the retries of the activity that published it, and a reader that reconnects with the number
of characters it has resumes right after them.

Two sources, merged by character offset:
- the text, live, from the run's history: the LLM activity publishes each batch (after it passed the output
  guardrails) as a signal, and a history long-poll returns that signal event as soon as Temporal stored it. Its
  payload is opened with the client's codec, bound to this workflow (a payload sealed for another workflow, or not
  sealed by us, is refused and skipped). No workflow task, no worker and no query stands between a stored batch
  and the client, so a worker busy generating does not delay its own stream.
- the end of the answer (published by the workflow once the whole answer passed the guardrails; in memory, not in
  history) from the stream's query, asked when the history shows the workflow took in something other than text
  (an activity finished, the run closed, ...), and every few seconds as a safety net. A query leaves nothing in
  history, so any number of readers (clients, consoles, reconnects) never grow it, and a closed run is read the
  same way.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.contrib.workflow_streams import PollInput, PollResult, PublishInput
from temporalio.converter import DataConverter, WorkflowSerializationContext
from temporalio.service import RPCError, RPCStatusCode

from domain.streaming import ANSWER_TOPIC, END_TOPIC, TOPICS, AnswerChunk, AnswerEnd, new_text

log = logging.getLogger("hybrid_llm.answer")

POLL = "__temporal_workflow_stream_poll"
PUBLISH = "__temporal_workflow_stream_publish"
SAFETY_POLL_S = 2.0  # a query at least this often while the answer has not ended, whatever the history shows

# History events after which the workflow does not publish the end: its own bookkeeping, and what it writes itself
# (a local activity's marker included: the request workflow publishes the end after its model's activity finished).
# Anything else (an activity or child finished, a timer fired, another signal, the run closed) may.
_QUIET = frozenset({
    EventType.EVENT_TYPE_MARKER_RECORDED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES, EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
    EventType.EVENT_TYPE_TIMER_STARTED, EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
})


@dataclass(frozen=True)
class Delta:
    text: str
    chars: int  # the reader's answer length after this text (its resume point)


class _NoStream:
    """The run has no answer stream (started by older code): only its result tells."""


@dataclass
class _Asks:
    """Requests for a query: `asked` counts them; `closed_at` is the one made when the history ended."""

    wake: asyncio.Event
    asked: int = 0
    closed_at: int | None = None

    def ask(self) -> None:
        self.asked += 1
        self.wake.set()


@dataclass(frozen=True)
class _Polled:
    """A query finished that started after ask number `upto`."""

    upto: int


def _unwire(data: str) -> Payload:
    payload = Payload()
    payload.ParseFromString(base64.b64decode(data))
    return payload


async def follow(client: Client, workflow_id: str, have: int = 0) -> AsyncIterator[Delta | AnswerEnd]:
    """Deltas past the first `have` characters, then the `AnswerEnd` once the answer passed the guardrails. Ends
    without an `AnswerEnd` when the run closed without one (failed, or did not stream): ask its result then."""
    handle = client.get_workflow_handle(workflow_id)
    converter = client.data_converter.with_context(
        WorkflowSerializationContext(namespace=client.namespace, workflow_id=workflow_id))
    events: asyncio.Queue = asyncio.Queue()
    asks = _Asks(asyncio.Event())
    history = asyncio.ensure_future(_history(handle, converter, events, asks))
    queries = asyncio.ensure_future(_queries(handle, converter.payload_converter, events, asks))
    no_stream = False
    try:
        while True:
            item = await events.get()
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, AnswerChunk):
                text = new_text(item, have)
                if text:
                    have += len(text)
                    yield Delta(text=text, chars=have)
            elif isinstance(item, AnswerEnd):
                yield item
                return
            elif isinstance(item, _NoStream):
                no_stream = True
            elif isinstance(item, _Polled) and asks.closed_at is not None and item.upto >= asks.closed_at:
                return  # a query after the run closed saw all there is: no end is coming
            if no_stream and asks.closed_at is not None:
                return
    finally:
        history.cancel()
        queries.cancel()


async def _history(handle: WorkflowHandle, converter: DataConverter, out: asyncio.Queue, asks: _Asks) -> None:
    """The published batches, from the history as it grows; asks for a query when the workflow may have moved on."""
    try:
        pages = handle.fetch_history_events(wait_new_event=True)
        while True:
            await pages.fetch_next_page()
            moved = False
            for event in pages.current_page or []:
                if _is_publish(event):
                    for chunk in await _chunks(converter, event):
                        out.put_nowait(chunk)
                elif event.event_type not in _QUIET:
                    moved = True
            if pages.next_page_token is None:  # the run closed and this was its last event
                asks.ask()
                asks.closed_at = asks.asked
                out.put_nowait(None)  # wakes the reader (a stream without a query may end now)
                return
            if moved:
                asks.ask()
    except asyncio.CancelledError:
        raise
    except BaseException as e:  # noqa: BLE001 - handed to the reader, who raises it
        out.put_nowait(e)


def _is_publish(event: HistoryEvent) -> bool:
    return (event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            and event.workflow_execution_signaled_event_attributes.signal_name == PUBLISH)


async def _chunks(converter: DataConverter, event: HistoryEvent) -> list[AnswerChunk]:
    """The answer chunks one publish signal carries; none when its payload is not ours for this workflow."""
    try:
        [batch] = await converter.decode(event.workflow_execution_signaled_event_attributes.input.payloads,
                                         [PublishInput])
        return [converter.payload_converter.from_payload(_unwire(item.data), AnswerChunk)
                for item in batch.items if item.topic == ANSWER_TOPIC]
    except Exception:  # noqa: BLE001 - a refused or malformed batch is skipped (the workflow refuses it too)
        log.warning("skipped a publish signal of %s that does not open for it (event %d)",
                    event.workflow_execution_signaled_event_attributes.identity or "?", event.event_id)
        return []


async def _queries(handle: WorkflowHandle, converter, out: asyncio.Queue, asks: _Asks) -> None:
    """The stream by query, each time the history asks (or every SAFETY_POLL_S): its text and its end."""
    offset = 0
    try:
        while True:
            try:
                await asyncio.wait_for(asks.wake.wait(), SAFETY_POLL_S)
            except TimeoutError:
                pass
            asks.wake.clear()
            upto = asks.asked
            while True:
                try:
                    result = await handle.query(POLL, PollInput(topics=TOPICS, from_offset=offset),
                                                result_type=PollResult)
                except WorkflowQueryFailedError:
                    out.put_nowait(_NoStream())
                    return
                except RPCError as e:
                    if e.status == RPCStatusCode.NOT_FOUND:
                        raise
                    break  # the run has not finished its first task yet: the next ask comes
                for item in result.items:
                    payload = _unwire(item.data)
                    if item.topic == ANSWER_TOPIC:
                        out.put_nowait(converter.from_payload(payload, AnswerChunk))
                    elif item.topic == END_TOPIC:
                        out.put_nowait(converter.from_payload(payload, AnswerEnd))
                        return
                offset = result.next_offset
                if not result.more_ready:
                    break
            out.put_nowait(_Polled(upto))
    except asyncio.CancelledError:
        raise
    except BaseException as e:  # noqa: BLE001 - handed to the reader, who raises it
        out.put_nowait(e)
