"""Observability for the worker (and any client): structured logs carrying the workflow id, OpenTelemetry
tracing through Temporal's interceptor, and metrics (Temporal's runtime metrics plus our own).

Everything is off or plain by default; settings turn it on:
  log_format = "json"                      one JSON object per line, with workflow_id / run_id / activity fields
  otel_exporter = "console" | "otlp"       spans for client calls, workflows and activities (TracingInterceptor)
  metrics_port = 9464                      Prometheus text at http://<metrics_host>:<port>/metrics
Our metrics (names as Prometheus shows them): hybrid_request_latency_ms{model,task_type,outcome},
hybrid_workflow_latency_ms{workflow_type,outcome}, hybrid_model_load_ms{model},
hybrid_llm_tokens{model,kind}, hybrid_permission_decisions{decision,decided_by}.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Any

from temporalio import activity, workflow
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (ActivityInboundInterceptor, ExecuteActivityInput, ExecuteWorkflowInput, Interceptor,
                               WorkflowInboundInterceptor, WorkflowInterceptorClassInput)

from hybrid_llm.settings import Settings

log = logging.getLogger("hybrid_llm.observability")

_TEMPORAL_FIELDS = ("workflow_id", "run_id", "workflow_type", "activity_id", "activity_type", "attempt", "namespace",
                    "task_queue", "update_id", "update_name")


# Logs -------------------------------------------------------------------------------------------------------
class JsonFormatter(logging.Formatter):
    """One JSON object per record. Temporal's workflow.logger / activity.logger put their context in the record's
    `temporal_workflow` / `temporal_activity` extras; those become top-level fields (workflow_id, run_id, ...)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("temporal_workflow", "temporal_activity"):
            details = getattr(record, key, None)
            if isinstance(details, dict):
                out.update({k: v for k, v in details.items() if k in _TEMPORAL_FIELDS})
        for key in ("workflow_id", "run_id", "duration_ms", "model"):  # plain extras of our own
            if key not in out and hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(settings: Settings, level: int = logging.INFO) -> None:
    """Root logging for the worker: text (as before) or JSON lines, by `log_format`."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


# Tracing ----------------------------------------------------------------------------------------------------
def tracing_interceptors(settings: Settings) -> list:
    """Temporal's OpenTelemetry interceptor with its own tracer provider, or nothing when the exporter is off.
    The same list goes to the client (spans for starts/signals) and the worker (workflows and activities)."""
    if settings.otel_exporter == "none":
        return []
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
    from temporalio.contrib.opentelemetry import TracingInterceptor

    provider = TracerProvider(resource=Resource.create({"service.name": "hybrid-llm"}))
    if settings.otel_exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=settings.otel_endpoint) if settings.otel_endpoint else OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    # Workflow spans even without a traced client (the CLI and API start workflows without one).
    return [TracingInterceptor(tracer=provider.get_tracer("hybrid_llm"), always_create_workflow_spans=True)]


# Metrics ----------------------------------------------------------------------------------------------------
def build_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime exporting Prometheus metrics when `metrics_port` is set (clients built on it report
    Temporal's own metrics, e.g. temporal_workflow_endtoend_latency, and ours from the interceptor below)."""
    if settings.metrics_port is None:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
        bind_address=f"{settings.metrics_host}:{settings.metrics_port}")))


def _field(value: Any, name: str, default: Any = None) -> Any:
    if isinstance(value, dict):
        return value.get(name, default)
    return getattr(value, name, default)


class _ActivityMetrics(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        t0 = time.perf_counter()
        result = await self.next.execute_activity(input)  # failures: the SDK logs them, with the workflow id
        ms = (time.perf_counter() - t0) * 1000
        activity.logger.debug("activity %s completed in %.0f ms", info.activity_type, ms, extra={"duration_ms": ms})
        try:
            _record_activity(info.activity_type, result)
        except Exception:  # noqa: BLE001 - metrics never fail an activity
            log.exception("recording metrics for %s", info.activity_type)
        return result


def _record_activity(activity_type: str, result: Any) -> None:
    meter = activity.metric_meter()
    if activity_type in ("llm.load", "llm.complete"):
        model = str(_field(result, "model_id", ""))
        load_ms = float(_field(result, "load_ms", 0.0) or 0.0)
        if activity_type == "llm.load" or load_ms > 0:
            meter.create_histogram_float("hybrid_model_load_ms", "Model load time", "ms").record(
                load_ms, {"model": model})
        if activity_type == "llm.complete":
            tokens = meter.create_counter("hybrid_llm_tokens", "Tokens in and out of models")
            tokens.add(int(_field(result, "prompt_tokens", 0) or 0), {"model": model, "kind": "prompt"})
            tokens.add(int(_field(result, "completion_tokens", 0) or 0), {"model": model, "kind": "completion"})


class _WorkflowMetrics(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        info = workflow.info()
        started = workflow.now()
        outcome = "failed"
        result = None
        try:
            result = await self.next.execute_workflow(input)
            outcome = "completed"
            return result
        except workflow.ContinueAsNewError:
            outcome = "continued_as_new"
            raise
        finally:
            ms = (workflow.now() - started).total_seconds() * 1000
            meter = workflow.metric_meter()  # records nothing while replaying
            meter.create_histogram_float("hybrid_workflow_latency_ms", "Workflow run latency", "ms").record(
                ms, {"workflow_type": info.workflow_type, "outcome": outcome})
            if info.workflow_type == "RequestWorkflow":
                meter.create_histogram_float("hybrid_request_latency_ms", "Request latency", "ms").record(
                    ms, {"model": str(_field(result, "model", "none")),
                         "task_type": str(_field(_field(result, "task_type", "none"), "value",
                                                 _field(result, "task_type", "none"))), "outcome": outcome})
            elif info.workflow_type == "PermissionWorkflow" and result is not None:
                decision = _field(_field(result, "decision"), "decision", "unknown")
                by = str(_field(result, "decided_by", ""))
                by = by if by in ("policy", "guardrails", "timeout") else "person"
                meter.create_counter("hybrid_permission_decisions", "Permission decisions").add(
                    1, {"decision": str(decision), "decided_by": by})
            workflow.logger.info("%s %s in %.0f ms", info.workflow_type, outcome, ms)


class MetricsInterceptor(Interceptor):
    """Our metrics and per-run log lines, for every workflow and activity of the worker."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityMetrics(next)

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _WorkflowMetrics


def worker_interceptors(settings: Settings) -> list:
    return [*tracing_interceptors(settings), MetricsInterceptor()]
