"""The provider interface and its error taxonomy (retryable or the caller's fault)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from domain.registry import ModelSpec
from domain.requests import ChatMessage


class ProviderError(Exception):
    """A provider failed. `retryable` says whether trying the same call again may succeed."""

    def __init__(self, message: str, *, retryable: bool, kind: str = "ProviderError") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.kind = kind


@dataclass(frozen=True)
class ProviderOutput:
    text: str
    prompt_tokens: int
    completion_tokens: int


class Provider(Protocol):
    """Blocking calls: the activity runs them on a worker thread, never on the event loop."""

    spec: ModelSpec

    @property
    def loaded(self) -> bool: ...

    def load(self) -> None: ...

    def unload(self) -> None: ...

    def check_available(self) -> str | None:
        """Cheap check without loading: None when usable, else why not (missing file, no key)."""

    def complete(self, messages: list[ChatMessage], max_tokens: int, temperature: float,
                 json_schema: dict | None = None) -> ProviderOutput:
        """`json_schema`: constrain the reply to JSON of that schema where the provider can."""


def make_provider(spec: ModelSpec) -> Provider:
    if spec.provider == "llama_cpp":
        from activities.providers.llama_cpp import LlamaCppProvider

        return LlamaCppProvider(spec)
    if spec.provider == "litellm":
        from activities.providers.litellm_provider import LiteLLMProvider

        return LiteLLMProvider(spec)
    if spec.provider == "scripted":
        from activities.providers.scripted import ScriptedProvider

        return ScriptedProvider(spec)
    raise ValueError(f"unknown provider {spec.provider!r}")
