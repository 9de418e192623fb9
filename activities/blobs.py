"""The content-addressed blob store (PostgreSQL table `blobs`): large prompts and outputs live here by sha256,
workflow histories carry only the hash. Writes are idempotent (same content, same row)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.db.models import BlobRow
from domain.blobs import (MESSAGES_MEDIA_TYPE, TEXT_MEDIA_TYPE, BlobRef, BlobRefs, MessagesBlob, Part, TextBlobs,
                          compose, messages_bytes, messages_from_bytes, refs_of, sha256_of)
from domain.requests import ChatMessage


class BlobNotFound(LookupError):
    pass


class BlobStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def put(self, data: bytes, media_type: str = TEXT_MEDIA_TYPE) -> str:
        sha = sha256_of(data)
        stmt = insert(BlobRow).values(sha256=sha, size=len(data), content=data, media_type=media_type)
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["sha256"]))
        return sha

    def get(self, sha: str) -> bytes:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(BlobRow.content).where(BlobRow.sha256 == sha)).first()
        if row is None:
            raise BlobNotFound(f"no blob {sha}")
        return bytes(row[0])

    def get_many(self, shas: list[str]) -> dict[str, tuple[bytes, str]]:
        if not shas:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(BlobRow.sha256, BlobRow.content, BlobRow.media_type)
                                .where(BlobRow.sha256.in_(shas))).all()
        return {r[0]: (bytes(r[1]), r[2]) for r in rows}

    # Typed helpers ------------------------------------------------------------------------------
    def put_text(self, text: str) -> str:
        return self.put(text.encode("utf-8"), TEXT_MEDIA_TYPE)

    def get_text(self, sha: str) -> str:
        return self.get(sha).decode("utf-8")

    def put_messages(self, messages: list[ChatMessage]) -> str:
        return self.put(messages_bytes(messages), MESSAGES_MEDIA_TYPE)

    def get_messages(self, sha: str) -> list[ChatMessage]:
        return messages_from_bytes(self.get(sha))


def resolve_texts(store: BlobStore, refs: list[str]) -> dict[str, str]:
    """The texts of `refs` (sha256 -> text), each checked against its hash. A missing or corrupt blob fails the
    activity for good (a retry would not find it either)."""
    found = store.get_many(list(refs))
    texts: dict[str, str] = {}
    for sha in refs:
        if sha not in found:
            raise ApplicationError(f"no blob {sha}", type="BlobNotFound", non_retryable=True)
        data = found[sha][0]
        if sha256_of(data) != sha:
            raise ApplicationError(f"blob {sha} does not match its hash", type="BlobCorrupt", non_retryable=True)
        texts[sha] = data.decode("utf-8")
    return texts


def compose_parts(store: BlobStore, parts: list[Part]) -> str:
    return compose(parts, resolve_texts(store, refs_of(parts)))


class BlobActivities:
    def __init__(self, store: BlobStore) -> None:
        self.store = store

    def all(self) -> list:
        return [self.put_messages, self.put_texts]

    @activity.defn(name="blobs.put_messages")
    def put_messages(self, blob: MessagesBlob) -> BlobRef:
        """Run as a LOCAL activity: its input is not recorded in history, only the returned hash. Composed messages
        (parts, some by reference) are composed here, so the prompt a model is sent is stored whole, by its hash."""
        messages = blob.messages or [ChatMessage(role=m.role, content=compose_parts(self.store, m.parts))
                                     for m in blob.composed]
        data = messages_bytes(messages)
        return BlobRef(sha256=self.store.put(data, MESSAGES_MEDIA_TYPE), size=len(data))

    @activity.defn(name="blobs.put_texts")
    def put_texts(self, blobs: TextBlobs) -> BlobRefs:
        """Run as a LOCAL activity: each text composed from its parts and stored; only the hashes enter history."""
        refs = []
        for parts in blobs.texts:
            data = compose_parts(self.store, parts).encode("utf-8")
            refs.append(BlobRef(sha256=self.store.put(data, TEXT_MEDIA_TYPE), size=len(data)))
        return BlobRefs(refs=refs)
