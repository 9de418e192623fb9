"""Cloud models (Claude, GPT, Gemini) and OpenAI-compatible servers through litellm.

litellm's own retries are off: Temporal owns retries. Keys are read by name from the worker's
environment at call time, so their values never reach workflow history or logs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading

from activities.interrupts import current_stop, on_current_stop
from activities.providers.base import OnText, ProviderError, ProviderOutput, skip_prefix
from domain.registry import ModelSpec
from domain.requests import ChatMessage

# Caller errors: retrying the same call cannot succeed.
_NON_RETRYABLE_STATUS = {400, 401, 403, 404, 405, 413, 422}


def _litellm():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download at import
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


class LiteLLMProvider:
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._ready = False

    @property
    def loaded(self) -> bool:
        return self._ready  # nothing to load: "loaded" means the client library is ready

    def _api_key(self) -> str | None:
        if self.spec.api_key_env:
            return os.environ.get(self.spec.api_key_env)
        return "not-needed" if self.spec.api_base else None

    def _redact(self, text: str) -> str:
        key = os.environ.get(self.spec.api_key_env) if self.spec.api_key_env else None
        return text.replace(key, "[redacted]") if key else text

    def check_available(self) -> str | None:
        if self.spec.api_key_env and not os.environ.get(self.spec.api_key_env):
            return f"set {self.spec.api_key_env} to enable {self.spec.id}"
        return None

    def load(self) -> None:
        _litellm()
        self._ready = True

    def unload(self) -> None:
        self._ready = False

    def complete(self, messages: list[ChatMessage], max_tokens: int, temperature: float,
                 json_schema: dict | None = None) -> ProviderOutput:
        if (problem := self.check_available()) is not None:
            raise ProviderError(problem, retryable=False, kind="ModelUnavailable")
        litellm = _litellm()
        self._ready = True
        kwargs = {}
        if json_schema:
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "reply", "schema": json_schema}}
        if "mock_response" in self.spec.options:  # litellm's own offline path, used by tests
            kwargs["mock_response"] = str(self.spec.options["mock_response"])
        call = dict(
                model=self.spec.model,
                messages=[m.model_dump() for m in messages],
                max_tokens=min(max_tokens, self.spec.max_output_tokens),
                temperature=temperature,
                api_base=self.spec.api_base,
                api_key=self._api_key(),
                num_retries=0,
                max_retries=0,
                timeout=float(self.spec.options.get("timeout_s", 120)),
                **kwargs,
            )
        try:
            stop = current_stop()
            if stop is None:
                resp = litellm.completion(**call)
            else:  # a lockdown may cancel it: the request itself is aborted (activities/interrupts.py)
                resp = _cancellable(litellm.acompletion(**call), stop)
                if resp is None:
                    return ProviderOutput(text="", prompt_tokens=0, completion_tokens=0)
        except Exception as e:  # litellm maps every provider's errors onto OpenAI-style classes
            raise self._error(e) from None
        usage = getattr(resp, "usage", None)
        return ProviderOutput(
            text=resp.choices[0].message.content or "",
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        )

    def _error(self, e: Exception) -> ProviderError:
        status = getattr(e, "status_code", None)
        name = type(e).__name__
        retryable = not (isinstance(status, int) and status in _NON_RETRYABLE_STATUS)
        if "ContextWindowExceeded" in name or "Authentication" in name or "BadRequest" in name:
            retryable = False
        kind = "BadRequest" if not retryable else "ProviderError"
        # Servers may echo the key in their error text ("Incorrect API key provided: ..."), and litellm
        # passes it through: cut the key out before the message can reach history or logs.
        return ProviderError(f"{self.spec.id}: {name} (status {status}): {self._redact(str(e))[:300]}",
                             retryable=retryable, kind=kind)

    def stream(self, messages: list[ChatMessage], max_tokens: int, temperature: float,
               json_schema: dict | None = None, *, json_mode: bool = False, stop: list[str] | None = None,
               seed: int | None = None, prefix: str = "", on_text: OnText | None = None) -> ProviderOutput:
        """litellm's stream. A `prefix` cannot be continued portably: the reply is regenerated (same seed, where the
        server honours one) and its first len(prefix) characters are skipped."""
        if (problem := self.check_available()) is not None:
            raise ProviderError(problem, retryable=False, kind="ModelUnavailable")
        litellm = _litellm()
        self._ready = True
        kwargs: dict = {}
        if json_schema:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {"name": "reply", "schema": json_schema}}
        elif json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        if stop:
            kwargs["stop"] = stop
        if seed is not None:
            kwargs["seed"] = seed
        if "mock_response" in self.spec.options:
            kwargs["mock_response"] = str(self.spec.options["mock_response"])
        forward = skip_prefix(prefix, on_text)
        text, finish, usage = "", None, None
        try:
            chunks = litellm.completion(
                model=self.spec.model, messages=[m.model_dump() for m in messages],
                max_tokens=min(max_tokens, self.spec.max_output_tokens), temperature=temperature,
                api_base=self.spec.api_base, api_key=self._api_key(), num_retries=0, max_retries=0,
                timeout=float(self.spec.options.get("timeout_s", 120)), stream=True,
                stream_options={"include_usage": True}, **kwargs)
            halt = current_stop()  # a lockdown ends the stream between chunks
            for chunk in chunks:
                if halt is not None and halt.is_set():
                    break
                usage = getattr(chunk, "usage", None) or usage
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                finish = getattr(choice, "finish_reason", None) or finish
                piece = getattr(choice.delta, "content", None) or ""
                if piece:
                    text += piece
                    if forward is not None and not forward(piece):
                        finish = "content_filter"
                        break
        except ProviderError:
            raise
        except Exception as e:  # noqa: BLE001 - mapped as in complete()
            raise self._error(e) from None
        full = prefix + text[len(prefix):] if prefix else text
        return ProviderOutput(text=full, prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                              completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                              finish_reason=finish)


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    """One event loop thread per worker process for cancellable calls (litellm's async clients stay on it)."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="litellm-calls", daemon=True).start()
        return _loop


def _cancellable(coro, stop: threading.Event):
    """Run `coro` on the background loop; a lockdown cancels the task, which aborts the HTTP request. None if so."""
    future = asyncio.run_coroutine_threadsafe(coro, _background_loop())
    on_current_stop(future.cancel)
    if stop.is_set():
        future.cancel()
    try:
        return future.result()
    except concurrent.futures.CancelledError:
        return None
