"""The model registry: which models exist, what they can do and where they run."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Capability(StrEnum):
    GENERAL = "general"
    CODE = "code"
    SECURITY = "security"


ProviderKind = Literal["llama_cpp", "litellm", "scripted"]


class ModelSpec(BaseModel):
    """One entry of the registry (a durable contract: add optional fields only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    provider: ProviderKind
    capabilities: tuple[Capability, ...] = Field(min_length=1)
    local: bool
    # llama_cpp: a GGUF file path (already resolved by the loader).
    path: str | None = None
    # litellm: the provider's model name ("anthropic/claude-...", "openai/local", ...).
    model: str | None = None
    # An OpenAI-compatible server (llama.cpp server, vLLM) for litellm.
    api_base: str | None = None
    # The NAME of the environment variable that holds the key; the value never leaves the worker.
    api_key_env: str | None = None
    context_size: int = Field(default=2048, ge=128, le=1_048_576)
    max_concurrency: int = Field(default=1, ge=1, le=1024)
    max_output_tokens: int = Field(default=512, ge=1, le=65_536)
    enabled: bool = True
    disabled_reason: str | None = None
    # Free-form provider options (scripted models: reply, delay_ms, fail).
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _provider_fields(self) -> "ModelSpec":
        if self.provider == "llama_cpp" and not self.path:
            raise ValueError(f"model {self.id!r}: a llama_cpp model needs a GGUF 'path'")
        if self.provider == "litellm" and not self.model:
            raise ValueError(f"model {self.id!r}: a litellm model needs a 'model' name")
        return self


class Registry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    models: tuple[ModelSpec, ...]

    @model_validator(mode="after")
    def _unique_ids(self) -> "Registry":
        ids = [m.id for m in self.models]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate model ids in registry: {', '.join(dupes)}")
        return self

    def get(self, model_id: str) -> ModelSpec | None:
        return next((m for m in self.models if m.id == model_id), None)

    def capability_index(self) -> dict[Capability, list[str]]:
        index: dict[Capability, list[str]] = {c: [] for c in Capability}
        for m in self.models:
            for c in m.capabilities:
                index[c].append(m.id)
        return index
