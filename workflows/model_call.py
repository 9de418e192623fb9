"""One routed model call from workflow code: route by capability, load if cold, call, fall back on failure,
and enforce the guardrails' verdict on the output. Shared by workflows that call models for a role."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.llm import LLMActivities
    from activities.lockdown import LockdownActivities
    from domain.guardrails import Risk, Verdict
    from domain.llm import Completion, CompletionRequest, ModelFailure, ModelRef, PoolCommand
    from domain.lockdown import EngageRequest, Trigger
    from domain.registry import Capability
    from domain.requests import Attempt, ChatMessage, Usage
    from domain.routing import RoutingDecision, TaskClassification, route
    from domain.scanning import blocked_message, is_security_alert, summary
    from domain.tuning import Tuning
    from workflows.pausable import Pausable


@dataclass
class ModelCall:
    completion: Completion
    model: str
    decisions: list[RoutingDecision]
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def usage(self) -> Usage:
        return Usage(prompt_tokens=self.completion.prompt_tokens, completion_tokens=self.completion.completion_tokens)


def activity_error_message(e: ActivityError) -> str:
    return str(e.cause) if e.cause is not None else str(e)


async def enforce(verdict: Verdict | None, what: str) -> None:
    """A blocked output fails the step; a critical hit (a SecurityAlert) locks the platform down first."""
    if verdict is None or verdict.risk == Risk.NONE or verdict.verdict != "block":
        return
    if is_security_alert(verdict):
        await workflow.execute_activity_method(
            LockdownActivities.alert,
            EngageRequest(reason=blocked_message(verdict, what), trigger=Trigger.SECURITY_ALERT,
                          actor=f"workflow:{workflow.info().workflow_id}"),
            start_to_close_timeout=timedelta(seconds=60))
    raise ApplicationError(blocked_message(verdict, what), summary(verdict), type="Blocked", non_retryable=True)


async def call_model(owner: Pausable, *, capability: Capability, messages: list[ChatMessage], request_id: str,
                     tuning: Tuning, why: str, max_tokens: int = 512, json_schema: dict | None = None) -> ModelCall:
    classification = TaskClassification(task_type=capability, scores={}, reasons=[why])
    snapshot = await workflow.execute_local_activity_method(
        LLMActivities.pool_status, PoolCommand(action="status"), start_to_close_timeout=timedelta(seconds=10))
    excluded: dict[str, str] = {}
    decisions: list[RoutingDecision] = []
    attempts: list[Attempt] = []
    retry = RetryPolicy(initial_interval=timedelta(seconds=tuning.retry_initial_interval_s), backoff_coefficient=2.0,
                        maximum_interval=timedelta(seconds=10), maximum_attempts=tuning.llm_max_attempts)
    timeouts = dict(start_to_close_timeout=timedelta(seconds=tuning.llm_start_to_close_s),
                    heartbeat_timeout=timedelta(seconds=tuning.llm_heartbeat_timeout_s), retry_policy=retry)
    while True:
        decision = route(classification, snapshot, request_id, None, excluded)
        decisions.append(decision)
        if decision.chosen is None:
            details = "; ".join(f"{m}: {w}" for m, w in decision.skipped.items()) or "no candidates"
            raise ApplicationError(f"no model could do this {capability.value} task ({details})",
                                   type="NoModelAvailable", non_retryable=True)
        model_id = decision.chosen
        status = snapshot.get(model_id)
        try:
            if status is not None and not status.loaded:
                await owner.guarded(lambda: workflow.execute_activity_method(
                    LLMActivities.load, ModelRef(model_id=model_id), **timeouts))
            completion = await owner.guarded(lambda: workflow.execute_activity_method(
                LLMActivities.complete,
                CompletionRequest(model_id=model_id, messages=messages, max_tokens=max_tokens, temperature=0.2,
                                  request_id=request_id, scan_semantic=tuning.guard_semantic,
                                  json_schema=json_schema), **timeouts))
        except ActivityError as e:
            error = activity_error_message(e)
            attempts.append(Attempt(model=model_id, ok=False, error=error))
            excluded[model_id] = error
            snapshot = await workflow.execute_local_activity_method(
                LLMActivities.report_failure, ModelFailure(model_id=model_id, error=error),
                start_to_close_timeout=timedelta(seconds=5))
            continue
        attempts.append(Attempt(model=model_id, ok=True))
        await enforce(completion.verdict, f"the answer of {model_id}")
        return ModelCall(completion=completion, model=model_id, decisions=decisions, attempts=attempts)
