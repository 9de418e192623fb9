"""A deterministic in-process model for orchestration tests and benchmarks (never in the default registry).

Options: reply (text; "{prompt}" is replaced by the last user message), script (a JSON list of
[regex, reply] pairs: the first regex found in the last user message picks the reply), delay_ms (simulated work),
fail ("transient" or "permanent": every call fails that way), load_ms (simulated load time),
token_delay_ms (streaming: the pause before each word), fail_once_after (streaming: the first call for each prompt
fails, transiently, after sending this many words).
"""

from __future__ import annotations

import json
import re
import time

from activities.interrupts import current_stop
from activities.providers.base import OnText, ProviderError, ProviderOutput, cut_at_stop, skip_prefix
from domain.registry import ModelSpec
from domain.requests import ChatMessage


class ScriptedProvider:
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._loaded = False
        self._failed_once: set[str] = set()

    @property
    def loaded(self) -> bool:
        return self._loaded

    def check_available(self) -> str | None:
        return None

    def load(self) -> None:
        if not self._loaded:
            time.sleep(float(self.spec.options.get("load_ms", 0)) / 1000)
            self._loaded = True

    def unload(self) -> None:
        self._loaded = False

    def complete(self, messages: list[ChatMessage], max_tokens: int, temperature: float,
                 json_schema: dict | None = None) -> ProviderOutput:
        return self._reply(messages, max_tokens)

    def stream(self, messages: list[ChatMessage], max_tokens: int, temperature: float,
               json_schema: dict | None = None, *, json_mode: bool = False, stop: list[str] | None = None,
               seed: int | None = None, prefix: str = "", on_text: OnText | None = None) -> ProviderOutput:
        """Word by word; deterministic, so a retry regenerates the same text and skips `prefix`."""
        out = self._reply(messages, max_tokens)
        text, stopped = cut_at_stop(out.text, stop)
        prompt = next((m.content for m in reversed(messages) if m.role == "user"), "")
        fail_after = int(self.spec.options.get("fail_once_after", -1))
        delay = float(self.spec.options.get("token_delay_ms", 0)) / 1000
        forward = skip_prefix(prefix, on_text)
        pieces = re.findall(r"\s*\S+", text)
        for i, piece in enumerate(pieces):
            if i == fail_after and prompt not in self._failed_once:
                self._failed_once.add(prompt)
                raise ProviderError(f"{self.spec.id}: scripted failure after {i} words", retryable=True)
            if delay:
                time.sleep(delay)
            if forward is not None and not forward(piece):
                return ProviderOutput(text="".join(pieces[:i + 1]), prompt_tokens=out.prompt_tokens,
                                      completion_tokens=i + 1, finish_reason="content_filter")
        reason = "stop" if stopped or len(pieces) < max_tokens else "length"
        return ProviderOutput(text=text, prompt_tokens=out.prompt_tokens, completion_tokens=len(pieces),
                              finish_reason=reason)

    def _reply(self, messages: list[ChatMessage], max_tokens: int) -> ProviderOutput:
        self.load()
        fail = str(self.spec.options.get("fail", ""))
        if fail:
            raise ProviderError(f"{self.spec.id}: scripted {fail} failure", retryable=fail == "transient")
        delay = float(self.spec.options.get("delay_ms", 0)) / 1000
        if delay:
            stop = current_stop()  # a lockdown stops the simulated generation at once
            if stop is not None:
                stop.wait(delay)
            else:
                time.sleep(delay)
        prompt = next((m.content for m in reversed(messages) if m.role == "user"), "")
        text = str(self.spec.options.get("reply", "scripted answer to: {prompt}"))
        for pattern, reply in json.loads(str(self.spec.options.get("script", "[]"))):
            if re.search(pattern, prompt, re.DOTALL):
                text = reply
                break
        text = text.replace("{prompt}", prompt)
        words = list(re.finditer(r"\S+", text))[:max_tokens]  # a "token" is a word; layout is kept
        return ProviderOutput(text=text[:words[-1].end()] if words else "",
                              prompt_tokens=sum(len(m.content.split()) for m in messages), completion_tokens=len(words))
