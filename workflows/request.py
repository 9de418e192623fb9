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
    from activities.permissions import PermissionActivities
    from activities.preflight import PreflightActivities
    from activities.routing import RoutingActivities
    from domain.llm import Completion, CompletionRequest, LoadResult, ModelFailure, ModelRef
    from domain.requests import (Attempt, ChatMessage, Progress, RequestInput, RequestResult, Timings, Usage,
                                 UserRequest)
    from domain.delegation import (
        ROOT_SCOPE,
        DelegationInput,
        DelegationLimits,
        DelegationRecord,
        Role,
        format_prompt,
        narrow,
        needs_collaboration,
    )
    from domain.registry import Capability
    from domain.routing import RoutingDecision, SimilarityRequest, TaskClassification, classify, route
    from domain.code_proposals import proposed_code
    from activities.rag.search import SearchActivities
    from activities.scanning import ScanActivities
    from domain.preflight import PreflightInput
    from domain.rag import MAX_QUERY_CHARS, RetrievedContext, RetrieveRequest, citations
    from domain.scanning import ScanRequest
    from domain.sandbox import Origin, SandboxInput, SandboxOutcome, SandboxSpec, sandbox_workflow_id
    from domain.scanning import summary
    from domain.tuning import Tuning
    from domain.approvals import PermissionInput, PermissionOutcome
    from domain.guardrails import Risk, Verdict
    from domain.permissions import Actor, Operation, PermissionRequest
    from domain.principals import Principal
    from workflows.pausable import Pausable
    from workflows.user_input import enforce_user_input
    from workflows.delegation import DelegationWorkflow
    from workflows.blob_refs import by_reference
    from workflows.model_call import activity_error_message, call_model, enforce
    from workflows.permission import PermissionWorkflow
    from workflows.sandbox import SandboxWorkflow
    from workflows.search_attributes import MODEL, TASK_TYPE

from workflows.streaming import AnswerStream

DEFAULT_SYSTEM_PROMPT = "You are a helpful, concise assistant."
# Pydantic models live in domain/ (passed through): defining them here would rebuild them for every run.


@workflow.defn(name="RequestWorkflow")
class RequestWorkflow(AnswerStream, Pausable):
    def __init__(self) -> None:
        super().__init__()
        self._progress = Progress(stage="received")
        self._verdicts: dict[str, dict] = {}
        self._notes: list[str] = []
        self._requester: Principal | None = None

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
        self._requester = inp.principal  # who asked: the four-eyes check of every approval this request needs
        self.lockdown_poll = timedelta(seconds=tuning.lockdown_poll_s)

        await self.checkpoint()
        self._progress = Progress(stage="routing")
        # The input scan and the pool snapshot in one local activity (one dispatch per request).
        preflight = await workflow.execute_local_activity_method(
            PreflightActivities.preflight, PreflightInput(prompt=request.prompt, semantic=tuning.guard_semantic),
            start_to_close_timeout=timedelta(seconds=60))
        await self._enforce(preflight.verdict, "the request", users_own=True, principal=inp.principal)
        snapshot = preflight.pool
        if request.model is not None and snapshot.get(request.model) is None:
            known = ", ".join(m.spec.id for m in snapshot.models)
            raise ApplicationError(f"unknown model {request.model!r}; known models: {known}",
                                   type="UnknownModel", non_retryable=True)

        context = await self._retrieve(request, tuning) if request.rag else None
        classification = classify(request.prompt, await self._similarity(request.prompt, tuning))
        # A key's model allowlist narrows the router's choice too (the API refuses an explicit model outside it).
        allowlist = inp.principal.models if inp.principal is not None else None
        collaboration = (needs_collaboration(classification)
                         if request.model is None and allowlist is None else None)
        if collaboration is not None and workflow.patched("collaboration"):
            result = await self._collaborate(request, tuning, classification, collaboration, snapshot, started)
            if result is not None:
                return result
        excluded: dict[str, str] = {} if allowlist is None else {
            m.spec.id: "not in the caller's model allowlist" for m in snapshot.models if m.spec.id not in allowlist}
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
                completion = await self.guarded(lambda: self._complete(request, model_id, tuning, context))
            except ActivityError as e:
                error = activity_error_message(e)
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
        if request.stream:
            self.answer_done(model_id, completion)
        sandbox = None
        if request.run_code and (proposal := proposed_code(completion.text)) is not None:
            self._progress = Progress(stage="sandbox", model=model_id)
            sandbox = await self._run_in_sandbox(proposal, status.spec, tuning)
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
            sandbox=sandbox,
            citations=citations(context) if context is not None else [],
            finish_reason=completion.finish_reason,
        )

    async def _enforce(self, verdict: Verdict, what: str, users_own: bool = False,
                       principal: Principal | None = None) -> None:
        """A block fails the request; a critical hit in a model's output locks the platform down first, one in the
        user's own input counts against that principal (workflows/user_input.py). Every verdict is already in
        history (an activity result); findings are also put in the memo, where the UI shows them."""
        if verdict.risk == Risk.NONE:
            return
        self._verdicts[what] = summary(verdict)
        workflow.upsert_memo({"guardrails": self._verdicts})
        if users_own:
            await enforce_user_input(verdict, what, principal)
        await enforce(verdict, what)

    def _record(self, decisions: list[RoutingDecision]) -> None:
        """Put the decision and its reasons into history (memo event) and the UI (search attributes)."""
        last = decisions[-1]
        workflow.upsert_memo({"routing": [d.model_dump(mode="json") for d in decisions]})
        workflow.upsert_search_attributes([TASK_TYPE.value_set(last.task_type.value),
                                           MODEL.value_set(last.chosen or "none")])

    async def _collaborate(self, request: UserRequest, tuning: Tuning, classification, why: str, snapshot,
                           started) -> RequestResult | None:
        """generalist -> coder (child) -> security reviewer (grandchild) -> coder revises -> generalist formats.
        None when the generalist may not delegate (then one model answers, as usual)."""
        general = route(TaskClassification(task_type=Capability.GENERAL, scores=classification.scores,
                                           reasons=[why]), snapshot, request.request_id)
        if general.chosen is None:
            return None
        generalist = general.chosen
        allowed = await workflow.execute_activity_method(
            PermissionActivities.check,
            PermissionRequest(actor=Actor.MODEL, operation=Operation.DELEGATE, model_id=generalist,
                              capabilities=(Capability.GENERAL,), explanation="hand the code to a coder"),
            start_to_close_timeout=timedelta(seconds=30))
        if not allowed.allowed:
            self._notes.append(f"no collaboration: delegation denied ({allowed.reason})")
            return None
        self._progress = Progress(stage="delegating", model=generalist)
        workflow.upsert_search_attributes([TASK_TYPE.value_set(classification.task_type.value),
                                           MODEL.value_set(generalist)])
        child_id = f"{workflow.info().workflow_id}-coder"
        scope = narrow(ROOT_SCOPE, Role.CODER)
        coder = await workflow.execute_child_workflow(
            DelegationWorkflow.run,
            DelegationInput(request_id=request.request_id, from_model=generalist, role=Role.CODER,
                            task=request.prompt, depth=1, scope=scope, tuning=tuning, max_tokens=request.max_tokens,
                            limits=DelegationLimits(max_depth=tuning.delegation_max_depth,
                                                    max_rounds=tuning.delegation_max_rounds)),
            id=child_id)
        records = [DelegationRecord(from_model=generalist, to=Role.CODER.value, model=coder.model,
                                    workflow_id=child_id, depth=1, scope=scope), *coder.delegations]
        workflow.upsert_memo({"collaboration": {"why": why, "approved": coder.approved, "rounds": coder.rounds,
                                                "delegations": [r.model_dump(mode="json", by_alias=True)
                                                                for r in records]}})
        self._progress = Progress(stage="formatting", model=generalist)
        formatted = await call_model(
            self, capability=Capability.GENERAL, request_id=request.request_id, tuning=tuning,
            why="format the collaboration's result", max_tokens=request.max_tokens,
            messages=[ChatMessage(role="system", content=request.system or DEFAULT_SYSTEM_PROMPT),
                      ChatMessage(role="user", content=format_prompt(request.prompt, coder))])
        answer = formatted.completion.text
        if coder.output.strip() and coder.output.strip() not in answer:
            answer += "\n\n" + coder.output.strip()  # never lose the reviewed code in the formatting
        usage = Usage(prompt_tokens=coder.usage.prompt_tokens + formatted.usage.prompt_tokens,
                      completion_tokens=coder.usage.completion_tokens + formatted.usage.completion_tokens)
        spec = snapshot.get(formatted.model)
        self._progress = Progress(stage="done", model=formatted.model)
        return RequestResult(
            request_id=request.request_id, answer=answer, model=formatted.model,
            provider=spec.spec.provider if spec else "unknown", task_type=classification.task_type,
            reasons=[*classification.reasons, why, *coder.notes], usage=usage,
            timings=Timings(total_ms=round((workflow.now() - started).total_seconds() * 1000, 1),
                            inference_ms=formatted.completion.inference_ms),
            attempts=formatted.attempts, delegations=[r.model_dump(mode="json", by_alias=True) for r in records],
            review_approved=coder.approved)

    async def _run_in_sandbox(self, proposal, spec, tuning: Tuning) -> SandboxOutcome:
        """The model proposes code: it runs only in a sandbox (a child workflow), reviewed by a person."""
        language, code = proposal
        sid = workflow.uuid4().hex[:16]
        return await workflow.execute_child_workflow(
            SandboxWorkflow.run,
            SandboxInput(spec=SandboxSpec(code=code, language=language,
                                          origin=Origin(actor="model", model_id=spec.id, local=spec.local,
                                                        capabilities=tuple(c.value for c in spec.capabilities),
                                                        name=spec.id)),
                         sandbox_id=sid, review_timeout_s=tuning.approval_timeout_s,
                         approval_timeout_s=tuning.approval_timeout_s, requester=self._requester),
            id=sandbox_workflow_id(sid))

    async def _save(self, request: UserRequest, spec, answer: str, tuning: Tuning) -> PermissionOutcome:
        """The model asks permission to write its answer (a child workflow: it may wait for a person)."""
        ask = PermissionRequest(actor=Actor.MODEL, operation=Operation.WRITE, model_id=spec.id,
                                capabilities=spec.capabilities, path=request.save_as,
                                explanation=f"saving the answer to {request.save_as}, as the user asked")
        return await workflow.execute_child_workflow(
            PermissionWorkflow.run,
            PermissionInput(request=ask, content=answer, approval_timeout_s=tuning.approval_timeout_s,
                            failure_threshold=tuning.permission_failure_threshold,
                            failure_window_s=tuning.permission_failure_window_s, requester=self._requester),
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
            workflow.logger.warning("embedding similarity unavailable, routing by rules: %s", activity_error_message(e))
            return None
        return result.scores

    async def _load(self, model_id: str, tuning: Tuning) -> LoadResult:
        return await workflow.execute_activity_method(
            LLMActivities.load, ModelRef(model_id=model_id),
            start_to_close_timeout=timedelta(seconds=tuning.llm_start_to_close_s),
            heartbeat_timeout=timedelta(seconds=tuning.llm_heartbeat_timeout_s),
            retry_policy=self._retry(tuning))

    async def _retrieve(self, request: UserRequest, tuning: Tuning) -> RetrievedContext:
        """Top-k passages of the uploads. The chunk ids and hashes the model sees are in history (the activity
        result and the memo); the passages pass the guardrails as documents (hidden instructions count more)."""
        self._progress = Progress(stage="retrieving")
        context = await workflow.execute_activity_method(
            SearchActivities.retrieve, RetrieveRequest(query=request.prompt[:MAX_QUERY_CHARS], k=request.rag_k),
            start_to_close_timeout=timedelta(seconds=120), retry_policy=self._retry(tuning))
        workflow.upsert_memo({"rag": {"chunk_ids": context.chunk_ids, "chunk_sha256s": context.chunk_sha256s}})
        if context.context:
            verdict = await workflow.execute_local_activity_method(
                ScanActivities.scan, ScanRequest(text=context.context, kind="prompt", source="document",
                                                 semantic=tuning.guard_semantic),
                start_to_close_timeout=timedelta(seconds=60))
            await self._enforce(verdict, "the retrieved passages")
        return context

    async def _complete(self, request: UserRequest, model_id: str, tuning: Tuning,
                        context: RetrievedContext | None = None) -> Completion:
        system = request.system or DEFAULT_SYSTEM_PROMPT
        if context is not None and context.context:
            system += "\n\nAnswer from these passages and cite them by number.\n" + context.context
        messages = [ChatMessage(role="system", content=system), ChatMessage(role="user", content=request.prompt)]
        if request.messages:  # a conversation (the OpenAI endpoint): the model sees it as given, plus any passages
            messages = list(request.messages)
            if context is not None and context.context:
                messages.insert(0, ChatMessage(role="system", content=system))
        refs = await by_reference(messages, tuning.blob_threshold_bytes)  # large prompts: a hash in history
        return await workflow.execute_activity_method(
            LLMActivities.complete,
            CompletionRequest(model_id=model_id, **refs, max_tokens=request.max_tokens,
                              temperature=request.temperature, request_id=request.request_id,
                              scan_semantic=tuning.guard_semantic, json_schema=request.json_schema,
                              **self.chat_options(request)),
            start_to_close_timeout=timedelta(seconds=tuning.llm_start_to_close_s),
            heartbeat_timeout=timedelta(seconds=tuning.llm_heartbeat_timeout_s),
            retry_policy=self._retry(tuning))

    @staticmethod
    def _retry(tuning: Tuning) -> RetryPolicy:
        return RetryPolicy(initial_interval=timedelta(seconds=tuning.retry_initial_interval_s),
                           backoff_coefficient=2.0, maximum_interval=timedelta(seconds=10),
                           maximum_attempts=tuning.llm_max_attempts)
