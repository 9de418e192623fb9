"""The answer stream: what a request workflow publishes while its model generates (pure; durable contract).

The LLM activity publishes `AnswerChunk`s, each with the character offset where its text starts in the answer, to
the request workflow's stream (temporalio's Workflow Streams). Readers resume at any character offset; a chunk
that overlaps what a reader already has (a retried activity, a reconnecting client) yields only its new tail.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, Field

ANSWER_TOPIC = "answer"
END_TOPIC = "answer.end"
TOPICS = [ANSWER_TOPIC, END_TOPIC]


class AnswerChunk(BaseModel):
    start: int = Field(ge=0, description="character offset of `text` in the answer")
    text: str

    @property
    def end(self) -> int:
        return self.start + len(self.text)


class AnswerEnd(BaseModel):
    """Published by the workflow once the answer passed the output guardrails."""

    model: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    chars: int = 0


def new_text(chunk: AnswerChunk, have: int) -> str:
    """The part of `chunk` past the first `have` characters of the answer (empty when the reader has it all)."""
    return chunk.text[max(0, have - chunk.start):] if chunk.end > have else ""


def assemble(chunks: list[AnswerChunk]) -> str:
    """The answer text the chunks carry, each character once, in order."""
    out = ""
    for chunk in chunks:
        out += new_text(chunk, len(out))
    return out


def seed_for(request_id: str) -> int:
    """A per-request sampling seed: a retried call samples the same text, so the stream can skip what it sent."""
    return int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:4], "big")


class Batcher:
    """Batch generated text for the stream: the first piece at once (time to first token), then at most one batch
    every `interval_s` or every `max_pieces` pieces, so history grows by batches, not tokens.

    Each batch costs work on the generating thread (the output guardrails scan the whole text so far, so a scan
    grows with the answer). `spent(seconds)` reports that work; the next batch then waits until it amounts to at
    most `busy_share` of the time, so a long answer is scanned less often instead of generating slower."""

    def __init__(self, interval_s: float = 0.2, max_pieces: int = 32, busy_share: float = 0.05) -> None:
        self.interval_s = interval_s
        self.max_pieces = max_pieces
        self.busy_share = busy_share
        self._pending = ""
        self._pieces = 0
        self._last: float | None = None
        self._gap = 0.0  # the least time between two batches that keeps the work within busy_share

    def add(self, text: str, now: float) -> str | None:
        """Add a piece; returns the text to publish now, or None to keep collecting."""
        self._pending += text
        self._pieces += 1
        if self._last is None:
            return self.take(now)
        since = now - self._last
        if (since >= self.interval_s or self._pieces >= self.max_pieces) and since >= self._gap:
            return self.take(now)
        return None

    def spent(self, seconds: float) -> None:
        """The work the last batch cost (its scan): the next batch comes no sooner than seconds / busy_share
        after it."""
        self._gap = seconds / self.busy_share if self.busy_share > 0 else 0.0

    def take(self, now: float) -> str | None:
        """Whatever is pending (at the end of generation), or None."""
        if not self._pending:
            return None
        out, self._pending, self._pieces, self._last = self._pending, "", 0, now
        return out
