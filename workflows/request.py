"""RequestWorkflow: one durable workflow per user request, a short pipeline:

preflight (scan prompt and system text, the pool, the worker's policy: one local activity)
-> context (ask --rag: passages, scanned as documents) -> plan (one model, or a collaboration of models)
-> answer (the model-call step, workflows/model_call.py) -> post-steps shared by both plans:
sandbox (ask --run), save (ask --save), citations.

The steps live in workflows/request_steps.py (passed through the sandbox); this module is re-loaded per run.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.contrib.workflow_streams import WorkflowStream
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.delegation import needs_collaboration
    from domain.rag import citations
    from domain.requests import Progress, RequestInput, RequestResult, Timings
    from domain.llm import Completion
    from domain.routing import classify
    from workflows.request_steps import RequestSteps
    from workflows.streaming import AnswerStream


@workflow.defn(name="RequestWorkflow")
class RequestWorkflow(AnswerStream, RequestSteps):
    @workflow.query(name="progress")
    def progress(self) -> Progress:
        if self.paused:
            return Progress(stage="paused", model=self._progress.model)
        return self._progress

    @workflow.init
    def __init__(self, raw: dict[str, Any]) -> None:
        super().__init__()
        try:
            self._input: RequestInput | ValidationError = RequestInput.model_validate(raw)
        except ValidationError as e:
            self._input = e  # the run fails with it
        if isinstance(self._input, RequestInput) and self._input.request.stream:
            self.answer_stream = WorkflowStream()  # its handlers: the OpenAI endpoint's readers and the publisher

    @workflow.run
    async def run(self, raw: dict[str, Any]) -> RequestResult:
        started = workflow.now()
        if isinstance(self._input, ValidationError):
            raise ApplicationError(f"invalid request: {self._input.errors(include_url=False)}",
                                   type="InvalidRequest", non_retryable=True)
        inp = self._input
        request, self._requester = inp.request, inp.principal
        await self.checkpoint()
        pre = await self._preflight(request)
        tuning = pre.policy
        context = await self._context(request, tuning) if request.rag else None
        classification = classify(request.prompt, await self._similarity(request.prompt, tuning))
        # A key's model allowlist narrows the router's choice (the API refuses an explicit model outside it); a
        # collaboration would call models by role, so there is none under an allowlist.
        allowlist = self._requester.models if self._requester is not None else None
        why = needs_collaboration(classification) if request.model is None and allowlist is None else None
        answer = None
        if why is not None:
            answer = await self._collaborate(request, tuning, classification, why, pre.pool, context)
        if answer is None:
            answer = await self._single(request, tuning, classification, pre.pool, context, allowlist)
        # Readers of the answer stream (the OpenAI endpoint; streamed requests only) learn the answer is complete.
        self.answer_done(answer.model, Completion(
            model_id=answer.model, text=answer.text, prompt_tokens=answer.usage.prompt_tokens,
            completion_tokens=answer.usage.completion_tokens, finish_reason=answer.finish_reason))
        sandbox = await self._run_in_sandbox(answer, tuning) if request.run_code else None
        saved = await self._save(request, answer, tuning) if request.save_as is not None else None
        self.stage("done", answer.model)
        self.flush_memo()
        return RequestResult(
            request_id=request.request_id, answer=answer.text, model=answer.model, provider=answer.spec.provider,
            task_type=answer.task_type, reasons=answer.reasons, usage=answer.usage,
            timings=Timings(total_ms=round((workflow.now() - started).total_seconds() * 1000, 1),
                            load_ms=round(answer.load_ms, 1), inference_ms=answer.inference_ms),
            attempts=answer.attempts, saved=saved, sandbox=sandbox, delegations=answer.delegations,
            review_approved=answer.review_approved, citations=citations(context) if context is not None else [],
            plan=answer.plan, policy_version=pre.policy_version, finish_reason=answer.finish_reason)
