"""The HTTP API against the real Temporal dev server and a real worker with scripted models.

The app is built by `create_app(settings)` and its lifespan really connects to Temporal; the
scripted provider stands in for the LLM because these tests are about the API and orchestration.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from temporalio.client import Client

from hybrid_llm.api import create_app
from hybrid_llm.settings import Settings
from tests.conftest import bearer, scripted


@asynccontextmanager
async def api_client(settings: Settings, key: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """The real app in-process; every call sends `key` (a real API key) unless it passes its own header."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api",
                                     headers=bearer(key) if key else None) as http:
            yield http


@pytest.fixture
async def api(settings: Settings, api_keys) -> AsyncIterator[httpx.AsyncClient]:
    """The API as the test user (`api_keys["user"]`); other roles pass `headers=bearer(api_keys[...][1])`."""
    async with api_client(settings, api_keys["user"][1]) as http:
        yield http


async def wait_until_closed(api: httpx.AsyncClient, request_id: str, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        response = await api.get(f"/v1/requests/{request_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] != "running":
            return body
        assert time.monotonic() < deadline, f"request {request_id} still running: {body}"
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_request_runs_to_completion(api, client: Client, run_worker, scripted_pool):
    pool = scripted_pool(scripted("echo", reply="echo: {prompt}", delay_ms=600))
    async with run_worker(pool):
        response = await api.post("/v1/requests", json={"prompt": "hello there", "max_tokens": 16})
        assert response.status_code == 202, response.text
        submitted = response.json()
        request_id = submitted["request_id"]
        assert len(request_id) == 32 and int(request_id, 16) >= 0  # uuid4 hex
        assert submitted["workflow_id"] == f"request-{request_id}"
        assert submitted["status_url"] == f"/v1/requests/{request_id}"
        assert response.headers["location"] == submitted["status_url"]

        running = (await api.get(submitted["status_url"])).json()
        assert running["status"] == "running"
        assert running["result"] is None and running["error"] is None
        assert running["progress"] and running["progress"]["stage"] in {"received", "routing", "loading", "generating"}, running

        body = await wait_until_closed(api, request_id)

    assert body["status"] == "completed", body
    assert body["workflow_id"] == submitted["workflow_id"] and body["error"] is None
    result = body["result"]
    assert result["request_id"] == request_id
    assert result["answer"] == "echo: hello there"
    assert (result["model"], result["provider"], result["task_type"]) == ("echo", "scripted", "general")
    assert result["usage"]["completion_tokens"] == 3
    assert result["timings"]["total_ms"] >= 600
    assert result["attempts"] == [{"model": "echo", "ok": True, "error": None}]
    assert any("echo" in reason for reason in result["reasons"])
    # The workflow really ran on Temporal, with the API's body as its input.
    handle = client.get_workflow_handle(submitted["workflow_id"])
    assert (await handle.describe()).status.name == "COMPLETED"


async def test_post_is_idempotent_on_request_id(api, client: Client, run_worker, scripted_pool):
    request_id = f"client-{uuid.uuid4().hex[:8]}"
    body = {"prompt": "count to three", "request_id": request_id}
    async with run_worker(scripted_pool(scripted("echo", delay_ms=300))):
        first = await api.post("/v1/requests", json=body)
        while_running = await api.post("/v1/requests", json=body)
        run_id = (await client.get_workflow_handle(f"request-{request_id}").describe()).run_id
        done = await wait_until_closed(api, request_id)
        after_completion = await api.post("/v1/requests", json=body)

    assert [r.status_code for r in (first, while_running, after_completion)] == [202, 202, 202]
    assert first.json() == while_running.json() == after_completion.json()
    assert first.json()["workflow_id"] == f"request-{request_id}"
    assert done["status"] == "completed"
    # Still the one run: neither retry started a second execution.
    description = await client.get_workflow_handle(f"request-{request_id}").describe()
    assert (description.run_id, description.status.name) == (run_id, "COMPLETED")
    runs: list = []
    for _ in range(100):  # visibility lags behind: wait until it lists the run, then it must list only that one
        runs = [w.run_id async for w in client.list_workflows(f"WorkflowId = 'request-{request_id}'")]
        if runs:
            break
        await asyncio.sleep(0.1)
    assert runs == [run_id]


@pytest.mark.parametrize(("body", "expected"), [
    ({"prompt": ""}, "prompt: String should have at least 1 character"),
    ({"prompt": "x" * 32_001}, "prompt: String should have at most 32000 characters"),
    ({"prompt": "   "}, "prompt: Value error, prompt is empty"),
    ({"prompt": "hi", "colour": "blue"}, "colour: Extra inputs are not permitted"),
    ({"prompt": "hi", "max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
    ({"prompt": "hi", "max_tokens": "lots"}, "max_tokens: Input should be a valid integer"),
    ({"prompt": "hi", "request_id": "no spaces please"}, "request_id: String should match pattern"),
    ({}, "prompt: Field required"),
])
async def test_invalid_bodies_are_422_with_a_readable_message(api, body: dict, expected: str):
    response = await api.post("/v1/requests", json=body)
    assert response.status_code == 422
    problem = response.json()
    assert problem["message"].startswith("invalid request: ")
    assert expected in problem["message"]
    assert problem["detail"] and all("input" not in d for d in problem["detail"])


async def test_body_that_is_not_json_is_422(api):
    response = await api.post("/v1/requests", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "JSON decode error" in response.json()["message"]


async def test_unknown_request_is_404_and_bad_id_is_422(api):
    missing = await api.get(f"/v1/requests/never-{uuid.uuid4().hex}")
    assert missing.status_code == 404
    assert missing.json()["message"].startswith("no request with id 'never-")

    bad = await api.get("/v1/requests/-starts-with-a-dash")
    assert bad.status_code == 422
    assert "request_id: String should match pattern" in bad.json()["message"]


async def test_unknown_model_fails_the_request_with_its_error_type(api, run_worker, scripted_pool):
    async with run_worker(scripted_pool(scripted("echo"))):
        submitted = (await api.post("/v1/requests", json={"prompt": "hi", "model": "no-such-model"})).json()
        body = await wait_until_closed(api, submitted["request_id"])
    assert body["status"] == "failed"
    assert body["result"] is None and body["progress"] is None
    assert body["error"]["type"] == "UnknownModel"
    assert "'no-such-model'" in body["error"]["message"] and "echo" in body["error"]["message"]


async def test_models_lists_the_worker_pool(api, run_worker, scripted_pool):
    pool = scripted_pool(scripted("echo"), scripted("coder", ("code",), local=False))
    async with run_worker(pool):
        response = await api.get("/v1/pool")
    assert response.status_code == 200, response.text
    models = {m["spec"]["id"]: m for m in response.json()["models"]}
    assert set(models) == {"echo", "coder"}
    assert models["coder"]["spec"]["capabilities"] == ["code"]
    assert models["echo"]["spec"]["local"] is True and models["coder"]["spec"]["local"] is False
    assert all(m["healthy"] and not m["cooling_down"] for m in models.values())


async def test_healthz_reports_temporal(api):
    response = await api.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"temporal": "ok", "message": None})


async def test_temporal_unreachable_is_503_and_the_app_reconnects_later(settings: Settings, temporal_target: str,
                                                                       api_keys):
    port = free_port()
    down = settings.model_copy(update={"temporal_address": f"127.0.0.1:{port}"})
    async with api_client(down, api_keys["user"][1]) as api:  # the app starts although Temporal is not there
        for response in (await api.post("/v1/requests", json={"prompt": "hi"}),
                         await api.get("/v1/requests/abc"),
                         await api.get("/v1/pool")):
            assert response.status_code == 503
            assert set(response.json()) == {"message"}
            assert response.json()["message"].startswith(f"cannot reach Temporal at 127.0.0.1:{port}")
            assert "HYBRID_TEMPORAL_ADDRESS" in response.json()["message"]
        health = await api.get("/healthz")
        assert (health.status_code, health.json()["temporal"]) == (503, "unreachable")
        # Input errors are still the caller's to fix, Temporal or not.
        assert (await api.post("/v1/requests", json={"prompt": ""})).status_code == 422

        # Temporal appears on that address (a TCP relay to the test server): the next request connects.
        async with tcp_relay(port, temporal_target):
            health = await api.get("/healthz")
            assert (health.status_code, health.json()["temporal"]) == (200, "ok")
            started = await api.post("/v1/requests", json={"prompt": "hi"})
            assert started.status_code == 202
            status = await api.get(started.json()["status_url"])
            assert (status.status_code, status.json()["status"]) == (200, "running")

        # ... and goes away again: calls on the connected client fail as 503 too, not as a 500.
        lost = await api.get(started.json()["status_url"])
        assert lost.status_code == 503
        assert lost.json()["message"].startswith(f"cannot reach Temporal at 127.0.0.1:{port}")
        assert (await api.get("/healthz")).status_code == 503


@asynccontextmanager
async def tcp_relay(port: int, target: str) -> AsyncIterator[None]:
    host, target_port = target.rsplit(":", 1)
    tasks: set[asyncio.Task] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(target_port))
        for coro in (pipe(reader, up_writer), pipe(up_reader, writer)):
            task = asyncio.create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


