"""The cloud / OpenAI-compatible provider path through litellm, offline but real.

- llama-cpp-python's OpenAI-compatible server (a real model behind a real HTTP API) answers through litellm,
  directly and end to end through RequestWorkflow.
- A fake OpenAI server (stdlib, in a thread) returns chosen HTTP errors, counts hits and records the
  Authorization header: error classification, Temporal-owned retries, and secrets kept out of history and logs.
- litellm's `mock_response`, and gating cloud entries on their API keys.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from temporalio.api.enums.v1 import RetryState
from temporalio.client import WorkflowFailureError, WorkflowHandle

from activities.llm_pool import LLMPool
from activities.providers import ProviderError
from activities.providers.litellm_provider import LiteLLMProvider
from domain.pool import ModelStatus, PoolSnapshot
from domain.registry import Capability, ModelSpec, Registry
from domain.requests import ChatMessage
from domain.routing import classify, route
from hybrid_llm.registry_file import load_registry
from hybrid_llm.request_client import failure_message
from hybrid_llm.temporal import PayloadReader, keyring_of
from tests.conftest import scripted
from tests.helpers import ask, ask_and_wait

ALL_CAPS = (Capability.GENERAL, Capability.CODE, Capability.SECURITY)
HELLO = [ChatMessage(role="user", content="Say hello in one short sentence.")]
CLOUD_KEYS = {"claude-sonnet": "ANTHROPIC_API_KEY", "gpt": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}


def litellm_spec(model_id: str, api_base: str, *, local: bool = False, **kw) -> ModelSpec:
    return ModelSpec(id=model_id, provider="litellm", model="openai/local", api_base=api_base, local=local,
                     capabilities=ALL_CAPS, max_concurrency=4, **kw)


# A fake OpenAI-compatible server ------------------------------------------------------------------------


@dataclass
class FakeOpenAI:
    """URLs look like http://127.0.0.1:PORT/<tag>/<status>/v1; hits are recorded per tag."""

    port: int = 0
    hits: dict[str, list[str | None]] = field(default_factory=dict)  # tag -> Authorization header per call
    lock: threading.Lock = field(default_factory=threading.Lock)

    def base(self, status: int) -> tuple[str, str]:
        tag = uuid.uuid4().hex[:10]
        return f"http://127.0.0.1:{self.port}/{tag}/{status}/v1", tag

    def hits_for(self, tag: str) -> list[str | None]:
        with self.lock:
            return list(self.hits.get(tag, []))


def _error_body(status: int, authorization: str | None) -> dict:
    if status == 400:
        return {"error": {"message": "This model's maximum context length is 2048 tokens. However, your messages "
                                     "resulted in 9000 tokens. Please reduce the length of the messages.",
                          "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}
    if status == 401:  # like some real services: the key is echoed back in the error text
        return {"error": {"message": f"Incorrect API key provided: {authorization}.", "type": "invalid_request_error",
                          "param": None, "code": "invalid_api_key"}}
    if status == 429:
        return {"error": {"message": "Rate limit reached, try again in 1s.", "type": "rate_limit_exceeded",
                          "param": None, "code": "rate_limit_exceeded"}}
    return {"error": {"message": "The server had an error while processing your request.", "type": "server_error",
                      "param": None, "code": None}}


def _make_handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            _, tag, status, *_ = self.path.split("/")
            authorization = self.headers.get("authorization")
            with fake.lock:
                fake.hits.setdefault(tag, []).append(authorization)
            if int(status) == 200:
                body = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": "local",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "hello from the fake server"}}],
                        "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}}
            else:
                body = _error_body(int(status), authorization)
            data = json.dumps(body).encode()
            self.send_response(int(status))
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(fake))
    server.daemon_threads = True
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="fake-openai", daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(5)


async def complete_attempts(handle: WorkflowHandle) -> dict[str, tuple[int, int]]:
    """model id -> (attempt number of the last llm.complete start, its retry state) from the workflow's history."""
    history = await handle.fetch_history()
    scheduled: dict[int, str] = {}
    result: dict[str, tuple[int, int]] = {}
    started_of: dict[int, int] = {}
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == "llm.complete":
                scheduled[event.event_id] = PayloadReader(keyring_of(handle._client)).value(
                    attrs.input.payloads[0])["model_id"]
        elif event.HasField("activity_task_started_event_attributes"):
            attrs = event.activity_task_started_event_attributes
            if attrs.scheduled_event_id in scheduled:
                started_of[attrs.scheduled_event_id] = attrs.attempt
        elif event.HasField("activity_task_failed_event_attributes"):
            attrs = event.activity_task_failed_event_attributes
            if attrs.scheduled_event_id in scheduled:
                result[scheduled[attrs.scheduled_event_id]] = (started_of[attrs.scheduled_event_id],
                                                               attrs.retry_state)
        elif event.HasField("activity_task_completed_event_attributes"):
            attrs = event.activity_task_completed_event_attributes
            if attrs.scheduled_event_id in scheduled:
                result[scheduled[attrs.scheduled_event_id]] = (started_of[attrs.scheduled_event_id], 0)
    return result


async def readable_history(handle: WorkflowHandle) -> str:
    """The full history JSON plus every payload's data decoded (`to_json()` keeps payloads base64-encoded), sealed
    payloads opened with the deployment's key: what someone holding that key (an auditor) could read."""
    from temporalio.api.common.v1 import Payload

    from hybrid_llm.codec import SealingCodec

    raw = (await handle.fetch_history()).to_json()
    codec = SealingCodec(keyring_of(handle._client))
    decoded: list[str] = []

    def opened(node: dict) -> bytes:
        payload = Payload(metadata={k: base64.b64decode(v) for k, v in node["metadata"].items()},
                          data=base64.b64decode(node["data"]))
        try:
            return codec.unseal(payload).data
        except ValueError:  # not sealed (search attributes)
            return payload.data

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("data"), str) and "metadata" in node:
                decoded.append(opened(node).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(raw))
    assert decoded, "no payloads found in history"
    return raw + "\n" + "\n".join(decoded)


# 1. A real OpenAI-compatible server (llama-cpp-python) ---------------------------------------------------


def test_llama_cpp_server_answers_through_litellm(llama_server):
    out = LiteLLMProvider(litellm_spec("llama-server", llama_server, local=True)).complete(HELLO, 16, 0.0)
    assert out.text.strip()
    assert out.prompt_tokens > 5 and 0 < out.completion_tokens <= 16


async def test_llama_cpp_server_answers_end_to_end(client, settings, run_worker, llama_server):
    spec = litellm_spec("llama-server", llama_server, local=True)
    async with run_worker(LLMPool(Registry(models=(spec,)))):
        _, result = await ask_and_wait(client, settings, "What is the capital of France? Answer in one word.",
                                       max_tokens=16)
    assert (result.model, result.provider) == ("llama-server", "litellm")
    assert result.answer.strip()
    assert result.usage.prompt_tokens > 5 and 0 < result.usage.completion_tokens <= 16
    assert [(a.model, a.ok) for a in result.attempts] == [("llama-server", True)]


# 2. Error classification and who retries -----------------------------------------------------------------


@pytest.mark.parametrize(("status", "retryable", "error_class"), [
    (401, False, "AuthenticationError"),
    (400, False, "ContextWindowExceededError"),
    (429, True, "RateLimitError"),
    (500, True, "InternalServerError"),
])
def test_http_errors_are_classified_and_litellm_does_not_retry(fake_openai, status, retryable, error_class):
    api_base, tag = fake_openai.base(status)
    with pytest.raises(ProviderError) as info:
        LiteLLMProvider(litellm_spec(f"m{status}", api_base)).complete(HELLO, 8, 0.0)
    assert info.value.retryable is retryable
    assert info.value.kind == ("ProviderError" if retryable else "BadRequest")
    assert f"m{status}: {error_class} (status {status})" in str(info.value)
    assert len(fake_openai.hits_for(tag)) == 1  # Temporal owns retries: litellm's and openai's are off


def test_a_missing_key_fails_before_any_http_call(fake_openai, monkeypatch):
    monkeypatch.delenv("HYBRID_TEST_ABSENT_KEY", raising=False)
    api_base, tag = fake_openai.base(200)
    provider = LiteLLMProvider(litellm_spec("keyless", api_base, api_key_env="HYBRID_TEST_ABSENT_KEY"))
    assert provider.check_available() == "set HYBRID_TEST_ABSENT_KEY to enable keyless"
    with pytest.raises(ProviderError) as info:
        provider.complete(HELLO, 8, 0.0)
    assert (info.value.kind, info.value.retryable) == ("ModelUnavailable", False)
    assert fake_openai.hits_for(tag) == []


async def test_auth_error_falls_back_without_retrying(client, settings, run_worker, fake_openai):
    api_base, tag = fake_openai.base(401)
    pool = LLMPool(Registry(models=(litellm_spec("bad-key", api_base, local=True),
                                    scripted("backup", local=False, reply="backup answer"))))
    settings.llm_max_attempts = 3
    async with run_worker(pool):
        handle, result = await ask_and_wait(client, settings, "hello")
    assert result.model == "backup" and result.answer == "backup answer"
    assert [(a.model, a.ok) for a in result.attempts] == [("bad-key", False), ("backup", True)]
    assert "AuthenticationError (status 401)" in (result.attempts[0].error or "")
    attempts = await complete_attempts(handle)
    assert attempts["bad-key"] == (1, RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE)
    assert attempts["backup"][0] == 1
    assert len(fake_openai.hits_for(tag)) == 1


async def test_server_error_is_retried_up_to_max_attempts_then_falls_back(client, settings, run_worker,
                                                                          fake_openai):
    api_base, tag = fake_openai.base(500)
    pool = LLMPool(Registry(models=(litellm_spec("down", api_base, local=True),
                                    scripted("backup", local=False, reply="backup answer"))))
    settings.llm_max_attempts = 3
    async with run_worker(pool):
        handle, result = await ask_and_wait(client, settings, "hello")
    assert result.model == "backup"
    assert [(a.model, a.ok) for a in result.attempts] == [("down", False), ("backup", True)]
    assert "InternalServerError (status 500)" in (result.attempts[0].error or "")
    attempts = await complete_attempts(handle)
    assert attempts["down"] == (3, RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED)
    assert len(fake_openai.hits_for(tag)) == 3  # one HTTP call per Temporal attempt


# 3. Secrets ---------------------------------------------------------------------------------------------


async def test_api_key_is_sent_but_never_reaches_history_errors_or_logs(client, settings, run_worker, fake_openai,
                                                                        monkeypatch, caplog, capfd):
    secret = f"sk-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("HYBRID_TEST_KEY", secret)
    ok_base, ok_tag = fake_openai.base(200)
    bad_base, bad_tag = fake_openai.base(401)
    pool = LLMPool(Registry(models=(litellm_spec("cloud-ok", ok_base, api_key_env="HYBRID_TEST_KEY"),
                                    litellm_spec("cloud-401", bad_base, api_key_env="HYBRID_TEST_KEY"))))
    caplog.set_level(logging.DEBUG)
    async with run_worker(pool):
        ok_handle, result = await ask_and_wait(client, settings, "hello", model="cloud-ok")
        bad_handle = await ask(client, settings, "hello", model="cloud-401")
        with pytest.raises(WorkflowFailureError) as info:
            await bad_handle.result()
    assert result.answer == "hello from the fake server"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (7, 5)
    # The key really was sent, to both servers...
    assert fake_openai.hits_for(ok_tag) == [f"Bearer {secret}"]
    assert fake_openai.hits_for(bad_tag) == [f"Bearer {secret}"]
    # ...and the 401 server echoed it back, but the failure carries only a redacted copy.
    kind, message = failure_message(info.value)
    assert kind == "NoModelAvailable"
    assert "AuthenticationError (status 401)" in message and "Incorrect API key provided: Bearer [redacted]" in message
    assert secret not in message
    for handle in (ok_handle, bad_handle):
        history = await readable_history(handle)
        assert "HYBRID_TEST_KEY" in history  # the key's name travels (pool snapshot), never its value
        assert "Bearer" not in history or handle is bad_handle
        assert secret not in history
    assert caplog.records and secret not in caplog.text
    out, err = capfd.readouterr()
    assert secret not in out and secret not in err


# 4. litellm's mock_response -----------------------------------------------------------------------------


def test_mock_response_answers_offline():
    spec = ModelSpec(id="mocked", provider="litellm", model="openai/gpt-4.1", local=False, capabilities=ALL_CAPS,
                     options={"mock_response": "a mocked answer"})
    out = LiteLLMProvider(spec).complete(HELLO, 32, 0.0)
    assert out.text == "a mocked answer"


# 5. Cloud entries are enabled only with their keys --------------------------------------------------------


def _snapshot(registry: Registry) -> PoolSnapshot:
    return PoolSnapshot(models=[ModelStatus(spec=spec) for spec in registry.models])


def test_cloud_entries_without_keys_are_disabled_with_the_variable_named():
    registry = load_registry(environ={})
    assert registry.get("smollm2-135m").enabled
    for model_id, variable in CLOUD_KEYS.items():
        spec = registry.get(model_id)
        assert not spec.enabled and spec.disabled_reason == f"set {variable} to enable"
    decision = route(classify("hello"), _snapshot(registry), "r1")
    assert decision.chosen == "smollm2-135m" and decision.candidates == ["smollm2-135m"]
    assert decision.skipped == {m: f"set {v} to enable" for m, v in CLOUD_KEYS.items()}


@pytest.mark.parametrize("model_id", list(CLOUD_KEYS))
def test_each_cloud_entry_is_enabled_by_its_own_key(model_id):
    variable = CLOUD_KEYS[model_id]
    registry = load_registry(environ={variable: "sk-test", "UNRELATED": "x"})
    assert {m.id for m in registry.models if m.enabled} == {"smollm2-135m", model_id}
    decision = route(classify("hello"), _snapshot(registry), "r1")
    assert decision.candidates == ["smollm2-135m", model_id]  # local first, the cloud model as fallback
    assert set(decision.skipped) == set(CLOUD_KEYS) - {model_id}
    forced = route(classify("hello"), _snapshot(registry), "r1",
                   forced_model=next(m for m in CLOUD_KEYS if m != model_id))
    assert forced.chosen is None and list(forced.skipped.values())[0].startswith("set ")


def test_an_empty_key_counts_as_unset_and_all_keys_enable_everything():
    assert not load_registry(environ={"OPENAI_API_KEY": ""}).get("gpt").enabled
    registry = load_registry(environ={v: "k" for v in CLOUD_KEYS.values()})
    assert all(m.enabled and m.disabled_reason is None for m in registry.models)
    assert route(classify("hello"), _snapshot(registry), "r1").skipped == {}
