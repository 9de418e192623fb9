"""Large prompts go to LLM activities by reference: the messages are stored in the blob store by a LOCAL activity
(whose input is not recorded in history), and the activity receives only their sha256.

Used from workflow code: `CompletionRequest(model_id=..., **await by_reference(messages, threshold), ...)`.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.blobs import MessagesBlob, text_size
    from domain.requests import ChatMessage
    from workflows import activity_stubs as act

# Histories recorded before references existed have no marker: they replay on the inline path.
PATCH_ID = "blob-refs-v1"


async def by_reference(messages: list[ChatMessage], threshold_bytes: int) -> dict:
    """CompletionRequest fields: the messages inline when small, else `messages_ref` (stored once per content)."""
    if text_size(messages) <= threshold_bytes or not workflow.patched(PATCH_ID):
        return {"messages": messages}
    ref = await act.blobs_put_messages(MessagesBlob(messages=messages))
    return {"messages": [], "messages_ref": ref.sha256}
