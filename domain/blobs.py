"""Content addressing for large texts kept outside history: canonical bytes, sha256 refs, previews. Pure."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
    """Input of `blobs.put_messages`: a local activity, so the messages themselves never enter history. Either the
    messages, or `composed`: messages made of parts (some by reference) that the activity composes, then stores."""

    messages: list[ChatMessage] = Field(default_factory=list)
    composed: list["PromptMessage"] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_of(self) -> "MessagesBlob":
        if bool(self.messages) == bool(self.composed):
            raise ValueError("a messages blob needs messages or composed messages (one of them)")
        return self


class BlobRef(BaseModel):
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int


# Texts a workflow holds by reference -------------------------------------------------------------------------
class Part(BaseModel):
    """A piece of a text a workflow composes: literal text, or a blob reference (the sha256 of a text blob) that
    only the activity needing the text resolves. `max_chars` cuts the piece (e.g. what a judge is shown)."""

    model_config = ConfigDict(frozen=True)

    text: str = ""
    ref: str | None = Field(default=None, pattern=SHA256_PATTERN)
    max_chars: int | None = Field(default=None, ge=0)

    @property
    def empty(self) -> bool:
        return self.ref is None and not self.text


def lit(text: str) -> Part:
    return Part(text=text)


def held(text: str, ref: str | None) -> Part:
    """A text a workflow input carries inline (`text`) or by reference (`ref`, then `text` is empty)."""
    return Part(ref=ref) if ref is not None else Part(text=text)


def joined(pieces: list[list[Part]], sep: str = "\n") -> list[Part]:
    """`sep.join` for texts made of parts (empty pieces are left out)."""
    out: list[Part] = []
    for piece in (p for p in pieces if any(not part.empty for part in p)):
        if out:
            out.append(lit(sep))
        out.extend(piece)
    return out


def refs_of(parts: list[Part]) -> list[str]:
    return sorted({p.ref for p in parts if p.ref is not None})


def literal(parts: list[Part]) -> str | None:
    """The text when no part is a reference (workflow code may compose it itself), else None."""
    if any(p.ref is not None for p in parts):
        return None
    return compose(parts, {})


def compose(parts: list[Part], texts: dict[str, str]) -> str:
    """The text of `parts`, references replaced by their texts (`texts`: sha256 -> text, resolved by an activity)."""
    out = []
    for p in parts:
        text = texts[p.ref] if p.ref is not None else p.text
        out.append(text if p.max_chars is None else text[:p.max_chars])
    return "".join(out)


class PromptMessage(BaseModel):
    """A chat message whose content is composed of parts (some by reference)."""

    role: str = Field(pattern=r"^(system|user|assistant)$")
    parts: list[Part]


class TextBlobs(BaseModel):
    """Input of `blobs.put_texts`: a LOCAL activity (its input is not recorded in history) that composes each text
    from its parts, stores it, and returns only the hashes."""

    texts: list[list[Part]] = Field(min_length=1)


class BlobRefs(BaseModel):
    refs: list[BlobRef]


MessagesBlob.model_rebuild()
