"""Content addressing for large texts kept outside history: canonical bytes, sha256 refs, previews. Pure."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, Field

from domain.requests import ChatMessage

MESSAGES_MEDIA_TYPE = "application/vnd.hybrid.messages+json"
TEXT_MEDIA_TYPE = "text/plain; charset=utf-8"
PREVIEW_CHARS = 200
SHA256_PATTERN = r"^[0-9a-f]{64}$"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def messages_bytes(messages: list[ChatMessage]) -> bytes:
    """The canonical encoding of what a model is asked: the same messages always give the same hash."""
    return json.dumps([{"role": m.role, "content": m.content} for m in messages], ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


def messages_from_bytes(data: bytes) -> list[ChatMessage]:
    return [ChatMessage(**m) for m in json.loads(data.decode("utf-8"))]


def text_size(messages: list[ChatMessage]) -> int:
    """Bytes of the messages' contents (what decides whether they go by reference)."""
    return sum(len(m.content.encode("utf-8")) for m in messages)


def preview(text: str, chars: int = PREVIEW_CHARS) -> str:
    return text if len(text) <= chars else text[:chars] + f"… [{len(text) - chars} more characters]"


class MessagesBlob(BaseModel):
    """Input of `blobs.put_messages`: a local activity, so the messages themselves never enter history."""

    messages: list[ChatMessage] = Field(min_length=1)


class BlobRef(BaseModel):
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int
