"""Inputs and outputs of the LLM activities (durable contracts: add optional fields only)."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from domain.guardrails import Verdict
from domain.requests import ChatMessage


class ModelRef(BaseModel):
    model_id: str


# The error type of a call that reached a worker other than the one its placement names (llm.complete).
MISPLACED = "Misplaced"


class CompletionRequest(BaseModel):
    model_id: str
    messages: list[ChatMessage] = Field(default_factory=list)
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = 0.2
    request_id: str | None = None
    scan_output: bool = True  # run the guardrails on the output where it is produced
    scan_semantic: bool = False
    json_schema: dict | None = None  # constrain the reply to JSON of this schema
    # Large prompts go by reference: the sha256 of the messages in the blob store (activities/blobs.py).
    messages_ref: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    # A large output comes back as a preview + text_ref instead of the full text (for callers that pass it on
    # by reference); callers that need the text itself leave this off.
    output_by_ref: bool = False
    # The OpenAI-compatible endpoint's options (durable contract: optional, off by default).
    stop: list[str] | None = None
    json_mode: bool = False  # constrain to a JSON object (json_schema, when given, constrains further)
    seed: int | None = None  # a retried call samples the same text (the stream skips what was published)
    stream: bool = False  # publish the text to the calling workflow's stream as it is generated
    resume: bool = False  # an earlier call may have published part of the answer: continue after it
    # The pool queue routing chose, when the call was sent on the workflow's own queue to start eagerly on the
    # worker running the workflow: any other worker refuses it (Misplaced) and the workflow sends it to that queue.
    placement: str | None = None

    @model_validator(mode="after")
    def _messages_or_ref(self) -> "CompletionRequest":
        if not self.messages and self.messages_ref is None:
            raise ValueError("a completion needs messages or messages_ref")
        return self


class Completion(BaseModel):
    model_id: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    load_ms: float = 0.0
    inference_ms: float = 0.0
    verdict: Verdict | None = None
    # Audit: what exactly the model saw and said, by content hash (resolvable in the blob store when stored).
    prompt_sha256: str | None = None
    text_sha256: str | None = None
    text_ref: str | None = None  # set when the output was stored as a blob (longer than the threshold)
    finish_reason: str | None = None  # "stop" or "length" when the provider says
    # A call run as a LOCAL activity (workflows/model_call.py) has no scheduled event holding its input: the
    # request comes back with the result, so history still holds what was asked (the audit reads it from here).
    request: CompletionRequest | None = None
    served_by: str | None = None  # the pool queue of the worker that ran the call (None: a worker without one)


class LoadResult(BaseModel):
    model_id: str
    loaded: bool
    load_ms: float
    memory_bytes: int


class HealthResult(BaseModel):
    model_id: str
    healthy: bool
    detail: str | None = None
    latency_ms: float = 0.0


class ModelFailure(BaseModel):
    model_id: str
    error: str
    task_queue: str | None = None  # the worker queue the failed call ran on (None: this worker)


class PoolCommand(BaseModel):
    """What `hybrid-llm models` asks the worker's pool to do."""

    action: str = Field(pattern=r"^(status|load|unload|health)$")
    model_id: str | None = None
