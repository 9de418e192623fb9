"""Observability on a real worker: JSON logs carry the workflow id, tracing spans through Temporal's
interceptor, Prometheus metrics (Temporal's and ours)."""

from __future__ import annotations

import json
import logging

import httpx

from domain.permissions import Actor, Operation, PermissionRequest
from hybrid_llm import permission_client
from hybrid_llm.observability import JsonFormatter, build_runtime
from hybrid_llm.stack.procs import free_port
from hybrid_llm.temporal import connect
from tests.conftest import scripted
from tests.helpers import ask_and_wait
from worker import build_worker


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


async def test_json_logs_carry_the_workflow_id(client, settings, run_worker, scripted_pool):
    capture = _Capture()
    loggers = [logging.getLogger(n) for n in ("temporalio.workflow", "temporalio.activity")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(capture)
        lg.setLevel(logging.DEBUG)
    try:
        pool = scripted_pool(scripted("flaky", fail="permanent"), scripted("steady", local=False))
        async with run_worker(pool):
            handle, _ = await ask_and_wait(client, settings, "hello")
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(capture)
            lg.setLevel(level)
    mine = [line for line in capture.lines if line.get("workflow_id") == handle.id]
    done = [line for line in mine if line["message"].startswith("RequestWorkflow completed")]
    assert done and done[0]["workflow_type"] == "RequestWorkflow" and done[0]["run_id"]
    failed = [line for line in mine if line.get("activity_type") == "llm.complete" and line["level"] == "warning"]
    assert failed and failed[0]["attempt"] == 1  # the flaky model's failure, with its workflow and activity
    assert any(line.get("activity_type") == "llm.complete" and "duration_ms" in line for line in mine)


async def test_tracing_spans_through_temporals_interceptor(client, settings, run_worker, scripted_pool, capsys):
    settings.otel_exporter = "console"
    traced = await connect(settings)  # the plugin brings the tracing interceptors the settings ask for
    async with run_worker(scripted_pool(), client=traced):
        await ask_and_wait(traced, settings, "hello")
    out = capsys.readouterr().out
    assert "RunWorkflow:RequestWorkflow" in out and "RunActivity:llm.complete" in out


async def test_prometheus_metrics_temporals_and_ours(client, settings, scripted_pool, engine):
    settings.metrics_port = free_port()
    runtime = build_runtime(settings)
    metered = await connect(settings, runtime=runtime)
    (settings.root / "downloads").mkdir(parents=True, exist_ok=True)
    want = PermissionRequest(actor=Actor.MODEL, operation=Operation.WRITE, model_id="echo", path="downloads/m.txt",
                             explanation="metrics test")
    deny = want.model_copy(update={"path": "uploads/m.txt"})
    async with build_worker(metered, settings, scripted_pool(scripted("echo", load_ms=20)), engine=engine):
        await ask_and_wait(metered, settings, "hello")
        for req in (want, deny):
            await (await permission_client.request_permission(metered, settings, req, "x")).result()
        text = httpx.get(f"http://127.0.0.1:{settings.metrics_port}/metrics", timeout=5).text
    assert "temporal_workflow_completed" in text  # Temporal's own runtime metrics
    assert "hybrid_request_latency_ms" in text and 'model="echo"' in text
    assert "hybrid_model_load_ms" in text
    decisions = [line for line in text.splitlines() if line.startswith("hybrid_permission_decisions")]
    assert any('decided_by="policy"' in line and 'decision="allow"' in line for line in decisions), decisions
    assert any('decided_by="policy"' in line and 'decision="deny"' in line for line in decisions), decisions
    assert "hybrid_llm_tokens" in text
