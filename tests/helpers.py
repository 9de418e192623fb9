"""Small helpers shared by tests: start requests, read decisions back out of history."""

from __future__ import annotations

import uuid

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from domain.principals import AccessRole, Principal
from domain.requests import RequestResult, UserRequest
from hybrid_llm.audit import replay
from hybrid_llm.request_client import start_request
from hybrid_llm.settings import Settings
from hybrid_llm.temporal import PayloadReader, keyring_of


TEST_USER = Principal(id="test-user", name="test user", roles=(AccessRole.USER,), kind="key")
TEST_APPROVER = Principal(id="test-approver", name="test approver", roles=(AccessRole.APPROVER,), kind="key")


async def ask(client: Client, settings: Settings, prompt: str, **kw) -> WorkflowHandle:
    principal = kw.pop("principal", TEST_USER)
    request = UserRequest(request_id=kw.pop("request_id", uuid.uuid4().hex), prompt=prompt, **kw)
    return await start_request(client, settings, request, principal=principal)


async def ask_and_wait(client: Client, settings: Settings, prompt: str, **kw) -> tuple[WorkflowHandle, RequestResult]:
    """Start a request and wait for its result; then its history (with its child workflows') must replay under the
    SDK's full sandbox (the worker runs workflows unsandboxed: workflows/passthrough.py)."""
    handle = await ask(client, settings, prompt, **kw)
    result = await handle.result()
    await assert_replays_in_sandbox(client, handle.id)
    return handle, result


async def assert_replays_in_sandbox(client: Client, workflow_id: str) -> None:
    """Replay a workflow and every child workflow it started with the sandboxed Replayer (default restrictions,
    nothing passed through), which refuses I/O, clocks, randomness and threads in workflow code."""
    histories, todo = [], [workflow_id]
    while todo:
        history = await client.get_workflow_handle(todo.pop()).fetch_history()
        histories.append(history)
        todo += [e.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
                 for e in history.events
                 if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED]
    outcome = await replay.verify(histories, keyring=keyring_of(client))
    assert outcome["failed"] == 0, outcome["failures"]


def model_calls(history, reader: PayloadReader) -> list[dict]:
    """Every llm.complete of a history, in order, whichever way it ran: as an activity (its input in the scheduled
    event, its result in the completed one) or as a local activity (a marker whose result echoes the request).
    Each: {"input": dict, "result": dict | None (failed, or not finished), "local": bool, "task_queue": the queue
    it was sent on (None for a local activity)}."""
    calls: list[dict] = []
    scheduled: dict[int, dict] = {}
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            a = event.activity_task_scheduled_event_attributes
            if a.activity_type.name == "llm.complete":
                scheduled[event.event_id] = call = {"input": reader.value(a.input.payloads[0]), "result": None,
                                                    "local": False, "task_queue": a.task_queue.name}
                calls.append(call)
        elif event.HasField("activity_task_completed_event_attributes"):
            a = event.activity_task_completed_event_attributes
            if a.scheduled_event_id in scheduled:
                scheduled[a.scheduled_event_id]["result"] = reader.value(a.result.payloads[0])
        elif event.HasField("marker_recorded_event_attributes"):
            a = event.marker_recorded_event_attributes
            if a.marker_name != "core_local_activity" or "data" not in a.details:
                continue
            data = reader.value(a.details["data"].payloads[0])
            if data.get("activity_type") != "llm.complete":
                continue
            result = reader.value(a.details["result"].payloads[0]) if "result" in a.details and \
                a.details["result"].payloads else None
            calls.append({"input": (result or {}).get("request") or {}, "result": result, "local": True,
                          "task_queue": None})
    return calls


async def routing_from_history(handle: WorkflowHandle) -> list[dict]:
    """The routing decisions the workflow recorded (memo upsert events), in order."""
    history = await handle.fetch_history()
    reader = PayloadReader(keyring_of(handle._client))
    decisions: list[dict] = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
            fields = event.workflow_properties_modified_event_attributes.upserted_memo.fields
            if "routing" in fields:
                decisions = reader.value(fields["routing"])
    return decisions


async def search_attributes_from_history(handle: WorkflowHandle) -> dict[str, str]:
    history = await handle.fetch_history()
    found: dict[str, str] = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            attrs = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            for key, payload in attrs.items():
                found[key] = PayloadReader(None).value(payload)
    return found
