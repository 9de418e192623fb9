"""Large texts travel by reference: stored in the blob store by a LOCAL activity (whose input is not recorded in
history), and only their sha256 goes into history; the activity that needs a text (llm.complete, guard.scan)
resolves it.

- Prompts to LLM activities: `CompletionRequest(model_id=..., **await by_reference(messages, threshold), ...)`.
  Messages may be composed of parts (domain.blobs.Part: literal text, or a reference to a text the workflow holds
  only by hash): then `blobs.put_messages` composes them and stores the prompt whole, and the activity gets
  `messages_ref`. Composition is deterministic (pure, domain.blobs.compose) and auditable (the stored prompt is
  the blob whose hash is in history).
- Texts of workflow inputs (delegation hops) and scans: `await texts_by_reference([...], threshold)` gives, for
  each text, a Part that is the text itself when small, or a reference to it when large.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.blobs import MessagesBlob, Part, PromptMessage, TextBlobs, lit, literal, text_size
    from domain.requests import ChatMessage
    from workflows import activity_stubs as act

# Histories recorded before references existed have no marker: they replay on the inline path.
PATCH_ID = "blob-refs-v1"
# Texts of delegation hops (and of the scans that read them) by reference.
TEXTS_PATCH_ID = "blob-refs-texts-v1"

Message = ChatMessage | PromptMessage


def as_chat(messages: list[Message]) -> list[ChatMessage] | None:
    """The messages as plain chat messages when no part is a reference (workflow code composes them), else None."""
    out = []
    for m in messages:
        if isinstance(m, ChatMessage):
            out.append(m)
            continue
        text = literal(m.parts)
        if text is None:
            return None
        out.append(ChatMessage(role=m.role, content=text))
    return out


async def by_reference(messages: list[Message], threshold_bytes: int) -> dict:
    """CompletionRequest fields: the messages inline when small (and fully known to the workflow), else
    `messages_ref` (stored once per content)."""
    chat = as_chat(messages)
    if chat is None:  # some text is held by reference: compose and store the prompt in the local activity
        composed = [m if isinstance(m, PromptMessage) else PromptMessage(role=m.role, parts=[lit(m.content)])
                    for m in messages]
        ref = await act.blobs_put_messages(MessagesBlob(composed=composed))
        return {"messages": [], "messages_ref": ref.sha256}
    if text_size(chat) <= threshold_bytes or not workflow.patched(PATCH_ID):
        return {"messages": chat}
    ref = await act.blobs_put_messages(MessagesBlob(messages=chat))
    return {"messages": [], "messages_ref": ref.sha256}


async def texts_by_reference(texts: list[str], threshold_bytes: int) -> list[Part]:
    """Each text as a Part: itself when at most `threshold_bytes`, else a reference (all large ones stored by one
    local activity). Below the threshold nothing changes (no activity, no marker)."""
    large = [i for i, t in enumerate(texts) if len(t.encode("utf-8")) > threshold_bytes]
    parts = [lit(t) for t in texts]
    if not large or not workflow.patched(TEXTS_PATCH_ID):
        return parts
    stored = await act.blobs_put_texts(TextBlobs(texts=[[lit(texts[i])] for i in large]))
    for i, ref in zip(large, stored.refs):
        parts[i] = Part(ref=ref.sha256)
    return parts


async def compose_by_reference(parts: list[Part]) -> Part:
    """A text composed of parts, some by reference: composed and stored by the local activity, returned as one
    reference (what a scan reads, what a judge is shown). A text with no reference stays literal."""
    text = literal(parts)
    if text is not None:
        return lit(text)
    stored = await act.blobs_put_texts(TextBlobs(texts=[parts]))
    return Part(ref=stored.refs[0].sha256)
