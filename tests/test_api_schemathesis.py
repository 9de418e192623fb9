"""schemathesis against the real API (served by uvicorn, backed by the real Temporal server, PostgreSQL and a worker):
every route of /openapi.json, every check (`--checks all`); any finding fails the test with schemathesis' report."""

from __future__ import annotations

import asyncio
import re
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import uvicorn

from activities.keys_store import KeyStore
from domain.principals import AccessRole
from hybrid_llm import lockdown_client, sandbox_client
from hybrid_llm.api import create_app
from hybrid_llm.stack.procs import free_port
from tests.conftest import scripted
from tests.test_sandbox import root  # noqa: F401 - the fixture

SCHEMATHESIS = os.path.join(os.path.dirname(sys.executable), "schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")


class Served:
    """The app under uvicorn in a thread of this process (its own event loop), on a free port."""

    def __init__(self, app, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="api")
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> "Served":
        self.thread.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code in (200, 503):
                    return self
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


async def test_schemathesis_finds_nothing_on_any_route(client, settings, run_worker, scripted_pool, root,  # noqa: F811
                                                       embedder, lockdown_secret, engine, tmp_path):
    settings.approval_timeout_s = 5  # generated requests that wait for a person give up quickly
    settings.sandbox_review_timeout_s = 5
    # Generated prompts sometimes read as attacks: each would count a strike against the fuzzer's key and suspend it
    # half-way (strikes are tested in test_lockdown_abuse.py); here the fuzzer must reach every route.
    settings.strike_threshold = 1_000_000
    # One key with every role, so each route's own logic is reached (role refusals are tested elsewhere).
    _, key = KeyStore(engine).create(f"schemathesis-{uuid.uuid4().hex[:6]}", tuple(AccessRole))
    headers = ["--header", f"Authorization: Bearer {key}"]
    embedder.encode(["warm up"])  # the first search would otherwise wait for the model to load
    async with run_worker(scripted_pool(scripted("echo")), embedder=embedder):
        with Served(create_app(settings), free_port()) as api:
            proc = await asyncio.create_subprocess_exec(
                SCHEMATHESIS, "--config-file", str(CONFIG), "run", f"{api.url}/openapi.json", "--checks", "all", "--max-examples", "15",
                "--seed", "1", "--request-timeout", "30", "--workers", "1", "--no-color",
                *headers,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out, _ = await proc.communicate()
        # schemathesis engages the lockdown (a valid POST /v1/lockdown/engage): release it, then the generated
        # sandbox runs end by themselves (their review times out); wait, so none is left behind.
        if (await lockdown_client.current(client, settings)).locked:
            await lockdown_client.release(client, settings, lockdown_secret, actor="pytest")
        for _ in range(600):
            if not await sandbox_client.listing(client, settings, running_only=True):
                break
            await asyncio.sleep(0.1)
    report = out.decode(errors="replace")
    (tmp_path / "report.txt").write_text(report)
    findings = _findings(report)
    # One documented exception: the OpenAI endpoint refuses a conversation without a non-empty user turn with
    # OpenAI's 400 (what its clients expect), a rule its JSON schema does not state.
    findings.discard(("POST /v1/chat/completions", "ST202"))
    assert proc.returncode == 0 or (not findings and OPENAI_400 in report), report[-8000:]
    assert "No issues found" in report or "passed" in report, report[-2000:]


OPENAI_400 = "messages need at least one non-empty user message"


def _findings(report: str) -> set[tuple[str, str]]:
    """(operation, check code) of every failure in schemathesis's report."""
    found: set[tuple[str, str]] = set()
    operation = None
    for line in report.splitlines():
        head = re.match(r"^_{3,} ([A-Z]+ \S+) _{3,}$", line.strip())
        if head:
            operation = head.group(1)
            continue
        code = re.match(r"^- (ST\d+) ", line.strip())
        if code and operation:
            found.add((operation, code.group(1)))
    return found
