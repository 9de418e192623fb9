"""Follow a request's answer as it is generated (the API's SSE, the console, tests and the benchmark).

Reads the request workflow's answer stream (workflows/streaming.py) from any character offset: each character is
yielded once, whatever the retries of the activity that published it, and a reader that reconnects with the number
of characters it has resumes right after them.

Readers poll with the stream's query (`__temporal_workflow_stream_poll`), not its long-poll update: a query leaves
nothing in history, so any number of readers (clients, consoles, reconnects) never grow it, and a closed run is read
the same way. The cost is up to one poll interval of latency.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass

from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.contrib.workflow_streams import PollInput, PollResult
from temporalio.service import RPCError, RPCStatusCode

from domain.streaming import ANSWER_TOPIC, END_TOPIC, TOPICS, AnswerChunk, AnswerEnd, new_text

POLL = "__temporal_workflow_stream_poll"
FIRST_POLL_S = 0.01  # until the first text: time to first token
NEXT_POLL_S = 0.035  # then: about half the activity's batch interval (domain/streaming.py), fewer queries


@dataclass(frozen=True)
class Delta:
    text: str
    chars: int  # the reader's answer length after this text (its resume point)


async def follow(client: Client, workflow_id: str, have: int = 0) -> AsyncIterator[Delta | AnswerEnd]:
    """Deltas past the first `have` characters, then the `AnswerEnd` once the answer passed the guardrails. Ends
    without an `AnswerEnd` when the run closed without one (failed, or did not stream): ask its result then."""
    converter = client.data_converter.payload_converter
    handle = client.get_workflow_handle(workflow_id)
    closed = asyncio.ensure_future(_closed(handle))
    offset = 0
    interval_s = FIRST_POLL_S
    try:
        while True:
            was_closed = closed.done()  # read before polling: a poll after the close sees everything
            try:
                result = await handle.query(POLL, PollInput(topics=TOPICS, from_offset=offset), result_type=PollResult)
            except WorkflowQueryFailedError:
                await closed  # a run without an answer stream (started by older code): its result will tell
                return
            except RPCError as e:
                if e.status == RPCStatusCode.NOT_FOUND or was_closed:
                    raise
                await asyncio.sleep(interval_s)  # the run has not finished its first task yet
                continue
            for item in result.items:
                payload = Payload()
                payload.ParseFromString(base64.b64decode(item.data))
                if item.topic == ANSWER_TOPIC:
                    text = new_text(converter.from_payload(payload, AnswerChunk), have)
                    if text:
                        have += len(text)
                        yield Delta(text=text, chars=have)
                elif item.topic == END_TOPIC:
                    yield converter.from_payload(payload, AnswerEnd)
                    return
            offset = result.next_offset
            if result.items:
                interval_s = NEXT_POLL_S
            if result.more_ready:
                continue
            if was_closed:
                return
            await asyncio.wait({closed}, timeout=interval_s)
    finally:
        closed.cancel()


async def _closed(handle) -> None:
    try:
        await handle.result()
    except Exception:  # noqa: BLE001 - only the closing matters here; the caller reads the outcome
        pass
