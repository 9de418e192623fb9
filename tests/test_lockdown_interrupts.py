"""The lockdown stops running work (issue 10 item 5): a running sandbox is killed and recorded as interrupted (it
runs again only if a person says so), an LLM call in flight is cancelled and runs again after release."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import psutil

from activities.llm_pool import LLMPool
from activities.providers.scripted import ScriptedProvider
from domain.principals import AccessRole, Principal
from domain.registry import Capability, ModelSpec, Registry
from domain.sandbox import Limits, ReviewDecision, SandboxSpec
from hybrid_llm import lockdown_client, sandbox_client
from tests.helpers import ask

OPERATOR = Principal(id="key-op", name="olga", roles=(AccessRole.OPERATOR,))
APPROVER = Principal(id="key-approver", name="april", roles=(AccessRole.APPROVER,))
BLOCKING = ModelSpec(id="blocking", provider="scripted", local=True, max_concurrency=4,
                     capabilities=(Capability.GENERAL,), options={})


class BlockingOnce(ScriptedProvider):
    """The first call generates "forever" (until stopped between tokens); later calls answer at once."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.calls: list[dict] = []
        self.first_started = threading.Event()

    def complete(self, messages, max_tokens, temperature, json_schema=None):
        from activities.interrupts import current_stop

        call = {"started": time.time(), "ended": None, "stopped": False}
        self.calls.append(call)
        if len(self.calls) == 1:
            self.first_started.set()
            stop = current_stop()
            for _ in range(600 * 20):  # ten minutes of "tokens", 50 ms each
                if stop is not None and stop.is_set():
                    call["stopped"] = True
                    break
                time.sleep(0.05)
        call["ended"] = time.time()
        return super().complete(messages, max_tokens, temperature, json_schema)


async def wait_until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_an_llm_call_in_flight_is_cancelled_and_runs_again_after_release(client, settings, run_worker,
                                                                              lockdown_secret):
    provider = BlockingOnce(BLOCKING)
    pool = LLMPool(Registry(models=(BLOCKING,)), provider_factory=lambda spec: provider)
    async with run_worker(pool):
        handle = await ask(client, settings, "a long answer please")
        await asyncio.to_thread(provider.first_started.wait, 60)
        await lockdown_client.engage(client, settings, "stop the generation", OPERATOR)

        async def first_call_ended() -> bool:
            return provider.calls[0]["ended"] is not None

        await wait_until(first_call_ended, 30)  # not ten minutes: the generation was stopped between tokens
        assert provider.calls[0]["stopped"]

        async def paused() -> bool:
            return (await handle.query("progress"))["stage"] == "paused"

        await wait_until(paused, 30)
        assert len(provider.calls) == 1  # nothing re-ran while locked
        await lockdown_client.release(client, settings, lockdown_secret, OPERATOR)
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.answer == "scripted answer to: a long answer please"
    assert len(provider.calls) == 2  # at least once: the interrupted call ran again after release
    history = await handle.fetch_history()
    failures = [e.activity_task_failed_event_attributes.failure for e in history.events
                if e.HasField("activity_task_failed_event_attributes")]
    assert [f.application_failure_info.type for f in failures] == ["InterruptedByLockdown"]


def sleepers() -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if (p.info["cmdline"] or [])[:2] == ["sleep", "600"]:
            found.append(p)
    return found


async def test_a_running_sandbox_is_killed_and_waits_for_a_person_after_release(client, settings, run_worker,
                                                                               scripted_pool, tmp_path,
                                                                               lockdown_secret):
    for name in ("downloads", "uploads", "rag"):
        (settings.root / name).mkdir(parents=True, exist_ok=True)
    settings.sandbox_dir = Path("/var/tmp/hybrid-llm-sandboxes") / f"test-{tmp_path.name}-{os.getpid()}"
    spec = SandboxSpec(command=("sleep", "600"), limits=Limits(wall_s=600))
    before = {p.pid for p in sleepers()}
    async with run_worker(scripted_pool()):
        handle = await sandbox_client.start(client, settings, spec, ReviewDecision(approve=True, by="pytest", principal=APPROVER))

        async def running() -> bool:
            return any(p.pid not in before for p in sleepers())

        await wait_until(running, 60)
        await lockdown_client.engage(client, settings, "kill the sandbox", OPERATOR)

        async def killed() -> bool:
            return not any(p.pid not in before for p in sleepers())

        await wait_until(killed, 30)  # ended, not after 600 s (the bound is bench/security.py's)

        async def interrupted() -> bool:
            view = await handle.query("view")
            return view is not None and "interrupted" in " ".join(view["history"])

        await wait_until(interrupted, 30)
        await lockdown_client.release(client, settings, lockdown_secret, OPERATOR)

        async def asks_a_person() -> bool:
            view = await handle.query("view")
            return view["step"] == "interrupted" and "waiting for a person" in " ".join(view["history"])

        await wait_until(asks_a_person, 30)
        await asyncio.sleep(1.0)
        assert not [p for p in sleepers() if p.pid not in before]  # not re-run by itself after release
        await sandbox_client.decide(client, handle.id, ReviewDecision(approve=False, by="pytest",
                                                                      note="leave it", principal=APPROVER))
        outcome = await asyncio.wait_for(handle.result(), 60)
    # Recorded as interrupted, with no run result (no exit code, no duration): not a run that took its time.
    assert outcome.status == "interrupted" and outcome.destroyed
    assert outcome.exit_code is None and outcome.duration_ms == 0 and outcome.stopped is None
    assert any("interrupted" in s for s in outcome.steps) and outcome.decided_by == "pytest"
    history = await handle.fetch_history()
    failed = [e.activity_task_failed_event_attributes.failure for e in history.events
              if e.HasField("activity_task_failed_event_attributes")]
    assert [f.application_failure_info.type for f in failed] == ["InterruptedByLockdown"]


def _llama_cpp_runs() -> bool:
    """Whether this machine's llama-cpp-python build can generate at all (one build here died with SIGILL)."""
    import subprocess
    import sys

    probe = ("from hybrid_llm.registry_file import load_registry\nfrom activities.providers import make_provider\n"
             "from domain.requests import ChatMessage\np = make_provider(load_registry().get('smollm2-135m'))\n"
             "p.complete([ChatMessage(role='user', content='hi')], max_tokens=2, temperature=0.0)\n")
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=120).returncode == 0


def test_llama_cpp_generation_stops_between_tokens(monkeypatch):
    """The real local model, a long generation, stopped by the run's switch (activities/interrupts.py)."""
    import pytest

    if not _llama_cpp_runs():
        pytest.skip("llama-cpp-python cannot generate on this machine (the build crashes): see the report")
    from activities import interrupts
    from activities.providers import make_provider
    from domain.requests import ChatMessage
    from hybrid_llm.registry_file import load_registry

    spec = load_registry().get("smollm2-135m")
    spec = spec.model_copy(update={"max_output_tokens": 4096})
    provider = make_provider(spec)
    provider.load()
    messages = [ChatMessage(role="user", content="Count from 1 to 5000, one number per line.")]
    free = provider.complete(messages, max_tokens=24, temperature=0.0)
    assert free.completion_tokens == 24  # uninterrupted, the same call generates to its limit

    from activities.providers import llama_cpp as provider_module

    counted = {"tokens": 0}
    real = provider_module.with_stop_switch

    def counting(criteria, stop):  # count the tokens checked against the run's switch (one check per token)
        checks = real(criteria, stop)
        if checks is None:
            return None

        def count(input_ids, logits):
            counted["tokens"] += 1
            return checks(input_ids, logits)

        return type(checks)([count])

    monkeypatch.setattr(provider_module, "with_stop_switch", counting)
    run = interrupts.Running("a test generation")

    def interrupt_mid_generation() -> None:
        while not provider._lock.locked():  # the generation holds the model's lock
            time.sleep(0.001)
        time.sleep(0.05)
        run.interrupt(7)

    with interrupts.bind(run):
        threading.Thread(target=interrupt_mid_generation, daemon=True).start()
        out = provider.complete(messages, max_tokens=24, temperature=0.0)
    assert run.interrupted and run.interrupted_epoch == 7
    assert out.text == "" and out.completion_tokens == 0  # stopped between tokens: no (partial) answer
    assert 0 < counted["tokens"] < 24  # checked per token, and it did stop early (fewer than the uninterrupted call)
    again = provider.complete([ChatMessage(role="user", content="Say hi.")], max_tokens=8, temperature=0.0)
    assert again.text  # the model is usable again at once
    provider.unload()


def test_a_streamed_llama_cpp_generation_stops_between_tokens():
    """The streaming path checks the run's switch as a stopping criterion (no per-token logits copy): stopped
    mid-generation, it hands on no piece after the switch and ends far short of its limit."""
    import pytest

    if not _llama_cpp_runs():
        pytest.skip("llama-cpp-python cannot generate on this machine (the build crashes): see the report")
    from activities import interrupts
    from activities.providers import make_provider
    from domain.requests import ChatMessage
    from hybrid_llm.registry_file import load_registry

    spec = load_registry().get("smollm2-135m").model_copy(update={"max_output_tokens": 4096})
    provider = make_provider(spec)
    provider.load()
    messages = [ChatMessage(role="user", content="Count from 1 to 5000, one number per line.")]
    run = interrupts.Running("a streamed test generation")
    pieces: list[str] = []
    after_stop: list[str] = []

    def on_text(piece: str) -> bool:
        (after_stop if run.interrupted else pieces).append(piece)
        if len(pieces) == 5:
            run.interrupt(9)  # from inside the generation: the very next token must not come
        return True

    with interrupts.bind(run):
        out = provider.stream(messages, max_tokens=400, temperature=0.0, on_text=on_text)
    assert run.interrupted and len(pieces) == 5
    assert after_stop == [] and out.completion_tokens <= 6  # stopped between two tokens
    free = provider.stream(messages, max_tokens=12, temperature=0.0)
    assert free.completion_tokens >= 10  # unbound, the same provider generates on
    provider.unload()


def test_a_litellm_call_is_cut_off_mid_answer():
    """litellm to an OpenAI-compatible server that answers 'forever': stopping the run aborts the HTTP request."""
    import http.server
    import json as _json

    from activities import interrupts
    from activities.providers import make_provider
    from domain.requests import ChatMessage
    from hybrid_llm.stack.procs import free_port

    sent = {"chunks": 0, "disconnected": None}

    class Streaming(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": "tok "}, "finish_reason": None}]}
            try:
                for _ in range(600 * 20):
                    self.wfile.write(f"data: {_json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    sent["chunks"] += 1
                    time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                sent["disconnected"] = time.time()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Streaming)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        spec = ModelSpec(id="remote", provider="litellm", model="openai/m", local=False,
                         api_base=f"http://127.0.0.1:{server.server_port}/v1", capabilities=(Capability.GENERAL,))
        provider = make_provider(spec)
        run = interrupts.Running("a remote generation")
        def interrupt_once_answering() -> None:
            while sent["chunks"] < 2:
                time.sleep(0.01)
            run.interrupt(3)

        with interrupts.bind(run):
            threading.Thread(target=interrupt_once_answering, daemon=True).start()
            out = provider.complete([ChatMessage(role="user", content="go on forever")], max_tokens=100_000,
                                    temperature=0.0)
        assert run.interrupted and out.text == "" and out.completion_tokens == 0
        deadline = time.monotonic() + 10
        while sent["disconnected"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sent["disconnected"] is not None, "the HTTP response was not closed"
        assert sent["chunks"] < 600 * 20
    finally:
        server.shutdown()
