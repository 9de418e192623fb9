"""RequestWorkflow: one durable workflow per user request.

validate -> route (pure, in workflow code) -> [load] -> LLM activity -> result, falling back to the
next candidate when a model fails. The routing decision and its reasons are recorded in history
(memo upserts) and as search attributes (TaskType, Model).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.llm import LLMActivities
    from activities.lockdown import LockdownActivities
    from activities.preflight import PreflightActivities
    from activities.routing import RoutingActivities
    from domain.llm import Completion, CompletionRequest, LoadResult, ModelFailure, ModelRef
    from domain.requests import (Attempt, ChatMessage, Progress, RequestInput, RequestResult, Timings, Usage,
                                 UserRequest)
    from domain.routing import RoutingDecision, SimilarityRequest, classify, route
    from domain.preflight import PreflightInput
    from domain.scanning import blocked_message, is_security_alert, summary
    from domain.tuning import Tuning
    from domain.approvals import PermissionInput, PermissionOutcome
    from domain.guardrails import Risk, Verdict
    from domain.lockdown import EngageRequest, Trigger
    from domain.permissions import Actor, Operation, PermissionRequest
    from workflows.pausable import Pausable
    from workflows.permission import PermissionWorkflow
    from workflows.search_attributes import MODEL, TASK_TYPE

DEFAULT_SYSTEM_PROMPT = "You are a helpful, concise assistant."
# Pydantic models live in domain/ (passed through): defining them here would rebuild them for every run.


def _cause(e: ActivityError) -> str:
    cause = e.cause
    return str(cause) if cause is not None else str(e)


@workflow.defn(name="RequestWorkflow")
class RequestWorkflow(Pausable):
    def __init__(self) -> None:
        super().__init__()
        self._progress = Progress(stage="received")
        self._verdicts: dict[str, dict] = {}

    @workflow.query(name="progress")
    def progress(self) -> Progress:
        if self.paused:
            return Progress(stage="paused", model=self._progress.model)
        return self._progress

    @workflow.run
    async def run(self, raw: dict[str, Any]) -> RequestResult:
        started = workflow.now()
        try:
            inp = RequestInput.model_validate(raw)
        except ValidationError as e:
            raise ApplicationError(f"invalid request: {e.errors(include_url=False)}", type="InvalidRequest",
                                   non_retryable=True) from None
        request, tuning = inp.request, inp.tuning
        self.lockdown_poll = timedelta(seconds=tuning.lockdown_poll_s)

        await self.checkpoint()
        self._progress = Progress(stage="routing")
        # The input scan and the pool snapshot in one local activity (one dispatch per request).
        preflight = await workflow.execute_local_activity_method(
            PreflightActivities.preflight, PreflightInput(prompt=request.prompt, semantic=tuning.guard_semantic),
            start_to_close_timeout=timedelta(seconds=60))
        await self._enforce(preflight.verdict, "the request")
        snapshot = preflight.pool
        if request.model is not None and snapshot.get(request.model) is None:
            known = ", ".join(m.spec.id for m in snapshot.models)
            raise ApplicationError(f"unknown model {request.model!r}; known models: {known}",
                                   type="UnknownModel", non_retryable=True)

        classification = classify(request.prompt, await self._similarity(request.prompt, tuning))
        excluded: dict[str, str] = {}
        decisions: list[RoutingDecision] = []
        attempts: list[Attempt] = []
        load_ms = 0.0
        while True:
            decision = route(classification, snapshot, request.request_id, request.model, excluded)
            decisions.append(decision)
            self._record(decisions)
            if decision.chosen is None:
                details = "; ".join(f"{m}: {why}" for m, why in decision.skipped.items()) or "no candidates"
                raise ApplicationError(f"no model could answer this {decision.task_type.value} request ({details})",
                                       decision.model_dump(mode="json"), type="NoModelAvailable", non_retryable=True)
            model_id = decision.chosen
            status = snapshot.get(model_id)
            assert status is not None
            try:
                if not status.loaded:
                    self._progress = Progress(stage="loading", model=model_id)
                    loaded = await self.guarded(lambda: self._load(model_id, tuning))
                    load_ms += loaded.load_ms
                self._progress = Progress(stage="generating", model=model_id)
                completion = await self.guarded(lambda: self._complete(request, model_id, tuning))
            except ActivityError as e:
                error = _cause(e)
                attempts.append(Attempt(model=model_id, ok=False, error=error))
                excluded[model_id] = error
                snapshot = await workflow.execute_local_activity_method(
                    LLMActivities.report_failure, ModelFailure(model_id=model_id, error=error),
                    start_to_close_timeout=timedelta(seconds=5))
                continue
            attempts.append(Attempt(model=model_id, ok=True))
            break

        if completion.verdict is not None:
            await self._enforce(completion.verdict, f"the answer of {model_id}")
        saved = None
        if request.save_as is not None:
            self._progress = Progress(stage="saving", model=model_id)
            saved = await self._save(request, status.spec, completion.text, tuning)
        self._progress = Progress(stage="done", model=model_id)
        total_ms = (workflow.now() - started).total_seconds() * 1000
        return RequestResult(
            request_id=request.request_id,
            answer=completion.text,
            model=model_id,
            provider=status.spec.provider,
            task_type=decision.task_type,
            reasons=decision.reasons,
            usage=Usage(prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens),
            timings=Timings(total_ms=round(total_ms, 1), load_ms=round(load_ms + completion.load_ms, 1),
                            inference_ms=completion.inference_ms),
            attempts=attempts,
            saved=saved,
        )

    async def _enforce(self, verdict: Verdict, what: str) -> None:
        """A block fails the request, and a critical hit locks the platform down first. Every verdict is already in
        history (an activity result); findings are also put in the memo, where the UI shows them."""
        if verdict.risk == Risk.NONE:
            return
        self._verdicts[what] = summary(verdict)
        workflow.upsert_memo({"guardrails": self._verdicts})
        if verdict.verdict != "block":
            return
        if is_security_alert(verdict):
            await workflow.execute_activity_method(
                LockdownActivities.alert,
                EngageRequest(reason=blocked_message(verdict, what), trigger=Trigger.SECURITY_ALERT,
                              actor=f"workflow:{workflow.info().workflow_id}"),
                start_to_close_timeout=timedelta(seconds=60))
        raise ApplicationError(blocked_message(verdict, what), summary(verdict), type="Blocked", non_retryable=True)

    def _record(self, decisions: list[RoutingDecision]) -> None:
        """Put the decision and its reasons into history (memo event) and the UI (search attributes)."""
        last = decisions[-1]
        workflow.upsert_memo({"routing": [d.model_dump(mode="json") for d in decisions]})
        workflow.upsert_search_attributes([TASK_TYPE.value_set(last.task_type.value),
                                           MODEL.value_set(last.chosen or "none")])

    async def _save(self, request: UserRequest, spec, answer: str, tuning: Tuning) -> PermissionOutcome:
        """The model asks permission to write its answer (a child workflow: it may wait for a person)."""
        ask = PermissionRequest(actor=Actor.MODEL, operation=Operation.WRITE, model_id=spec.id,
                                capabilities=spec.capabilities, path=request.save_as,
                                explanation=f"saving the answer to {request.save_as}, as the user asked")
        return await workflow.execute_child_workflow(
            PermissionWorkflow.run,
            PermissionInput(request=ask, content=answer, approval_timeout_s=tuning.approval_timeout_s,
                            failure_threshold=tuning.permission_failure_threshold,
                            failure_window_s=tuning.permission_failure_window_s),
            id=f"{workflow.info().workflow_id}-save")

    async def _similarity(self, prompt: str, tuning: Tuning) -> dict | None:
        """Embedding evidence for the classifier when enabled; rules alone if it is off or fails."""
        if not tuning.router_embeddings:
            return None
        try:
            result = await workflow.execute_local_activity_method(
                RoutingActivities.similarity, SimilarityRequest(text=prompt),
                start_to_close_timeout=timedelta(seconds=60), retry_policy=RetryPolicy(maximum_attempts=1))
        except ActivityError as e:
            workflow.logger.warning("embedding similarity unavailable, routing by rules: %s", _cause(e))
            return None
        return result.scores

    async def _load(self, model_id: str, tuning: Tuning) -> LoadResult:
        return await workflow.execute_activity_method(
            LLMActivities.load, ModelRef(model_id=model_id),
            start_to_close_timeout=timedelta(seconds=tuning.llm_start_to_close_s),
            heartbeat_timeout=timedelta(seconds=tuning.llm_heartbeat_timeout_s),
            retry_policy=self._retry(tuning))

    async def _complete(self, request: UserRequest, model_id: str, tuning: Tuning) -> Completion:
        messages = [ChatMessage(role="system", content=request.system or DEFAULT_SYSTEM_PROMPT),
                    ChatMessage(role="user", content=request.prompt)]
        return await workflow.execute_activity_method(
            LLMActivities.complete,
            CompletionRequest(model_id=model_id, messages=messages, max_tokens=request.max_tokens,
                              temperature=request.temperature, request_id=request.request_id,
                              scan_semantic=tuning.guard_semantic),
            start_to_close_timeout=timedelta(seconds=tuning.llm_start_to_close_s),
            heartbeat_timeout=timedelta(seconds=tuning.llm_heartbeat_timeout_s),
            retry_policy=self._retry(tuning))

    @staticmethod
    def _retry(tuning: Tuning) -> RetryPolicy:
        return RetryPolicy(initial_interval=timedelta(seconds=tuning.retry_initial_interval_s),
                           backoff_coefficient=2.0, maximum_interval=timedelta(seconds=10),
                           maximum_attempts=tuning.llm_max_attempts)
