"""Small helpers shared by tests: start requests, read decisions back out of history."""

from __future__ import annotations

import uuid

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from domain.principals import AccessRole, Principal
from domain.requests import RequestResult, UserRequest
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
    handle = await ask(client, settings, prompt, **kw)
    return handle, await handle.result()


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
