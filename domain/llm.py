"""Inputs and outputs of the LLM activities (durable contracts: add optional fields only)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from domain.guardrails import Verdict
from domain.requests import ChatMessage


class ModelRef(BaseModel):
    model_id: str


class CompletionRequest(BaseModel):
    model_id: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = 0.2
    request_id: str | None = None
    scan_output: bool = True  # run the guardrails on the output where it is produced
    scan_semantic: bool = False


class Completion(BaseModel):
    model_id: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    load_ms: float = 0.0
    inference_ms: float = 0.0
    verdict: Verdict | None = None


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


class PoolCommand(BaseModel):
    """What `hybrid-llm models` asks the worker's pool to do."""

    action: str = Field(pattern=r"^(status|load|unload|health)$")
    model_id: str | None = None
