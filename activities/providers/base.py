"""The provider interface and its error taxonomy (retryable or the caller's fault)."""

from __future__ import annotations

from collections.abc import Callable
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
    finish_reason: str | None = None  # "stop", "length", or "content_filter" when the listener stopped it


# Called with each new piece of text as it is generated; returning False stops the generation there.
OnText = Callable[[str], bool]


def cut_at_stop(text: str, stop: list[str] | None) -> tuple[str, bool]:
    """`text` up to the first stop sequence (which is not included), and whether one was found."""
    cuts = [i for i in (text.find(s) for s in stop or []) if i >= 0]
    return (text[:min(cuts)], True) if cuts else (text, False)


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

    def stream(self, messages: list[ChatMessage], max_tokens: int, temperature: float,
               json_schema: dict | None = None, *, json_mode: bool = False, stop: list[str] | None = None,
               seed: int | None = None, prefix: str = "", on_text: OnText | None = None) -> ProviderOutput:
        """Generate, handing each new piece of text to `on_text` as it comes. `prefix`: the start of the answer
        that was already delivered (an earlier attempt); the output continues it, `on_text` sees only what follows,
        and the returned text includes it."""


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


def skip_prefix(prefix: str, on_text: OnText | None) -> OnText | None:
    """For providers that cannot continue a given prefix: regenerate (same seed) and pass on only what comes after
    the first len(prefix) characters."""
    if on_text is None or not prefix:
        return on_text
    seen = 0

    def forward(piece: str) -> bool:
        nonlocal seen
        start, seen = seen, seen + len(piece)
        tail = piece[max(0, len(prefix) - start):] if seen > len(prefix) else ""
        return on_text(tail) if tail else True

    return forward
