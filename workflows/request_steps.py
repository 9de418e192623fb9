"""The steps of a request (workflows/request.py): preflight, context, the two plans, and the post-steps.

A helper of RequestWorkflow, passed through the workflow sandbox (workflows/passthrough.py): deterministic, no
per-run state at module level, so it is loaded once per worker instead of once per run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from domain.approvals import PermissionInput, PermissionOutcome
from domain.blobs import lit
from domain.code_proposals import proposed_code
from domain.delegation import (ROOT_SCOPE, DelegationInput, DelegationLimits, DelegationRecord, DelegationResult,
                               Role, carried, format_prompt, narrow)
from domain.permissions import Actor, Operation, PermissionRequest
from domain.pool import PoolSnapshot
from domain.principals import Principal
from domain.preflight import Preflight, PreflightInput
from domain.rag import MAX_QUERY_CHARS, RetrievedContext, RetrieveRequest
from domain.registry import Capability, ModelSpec
from domain.requests import Attempt, ChatMessage, Progress, Usage, UserRequest
from domain.routing import SimilarityRequest, TaskClassification, route
from domain.sandbox import Origin, SandboxInput, SandboxOutcome, SandboxSpec, sandbox_workflow_id
from domain.tuning import Tuning
from workflows import activity_stubs as act
from workflows.blob_refs import texts_by_reference
from workflows.model_call import ModelCaller, activity_error_message
from workflows.user_input import enforce_user_input

DEFAULT_SYSTEM_PROMPT = "You are a helpful, concise assistant."
CITE = "\n\nAnswer from these passages and cite them by number.\n"


@dataclass
class Answer:
    """What either plan produced, before the post-steps."""

    text: str
    model: str
    spec: ModelSpec  # the model that answered (and asks to save)
    author: ModelSpec  # the model whose code it is (runs in the sandbox under its name)
    task_type: Capability
    reasons: list[str]
    usage: Usage
    attempts: list[Attempt]
    load_ms: float = 0.0
    inference_ms: float = 0.0
    delegations: list[dict] = field(default_factory=list)
    review_approved: bool | None = None
    plan: str = "single"
    finish_reason: str | None = None


class RequestSteps(ModelCaller):
    def __init__(self) -> None:
        super().__init__()
        self._progress = Progress(stage="received")
        self._requester: Principal | None = None  # who asked (stamped by the entry point)

    def stage(self, name: str, model: str | None = None) -> None:
        self._progress = Progress(stage=name, model=model)

    async def _preflight(self, request: UserRequest) -> Preflight:
        """One local activity: the prompt and the system text scanned, the pool, the worker's policy."""
        self.stage("routing")
        pre = await act.request_preflight(PreflightInput(prompt=request.prompt, system=request.system))
        tuning = pre.policy
        self.lockdown_poll = timedelta(seconds=tuning.lockdown_poll_s)
        # Newer workers' runs write it with the first routing record (or whatever memo comes first, or at the end).
        self.upsert_memo({"policy_version": pre.policy_version}, later=pre.memo_with_routing)
        # The guard judge's second opinion, when the worker's policy names one (a model call of this workflow).
        verdict = await self.second_opinion(pre.verdict, lit(request.prompt), "prompt", "the request", tuning,
                                            request.request_id, pre.pool)
        system_verdict = pre.system_verdict
        if request.system and system_verdict is not None:
            system_verdict = await self.second_opinion(system_verdict, lit(request.system), "prompt",
                                                       "the system text", tuning, request.request_id, pre.pool)
        # The user's own text: a critical hit fails this request and counts against the principal (no lockdown).
        await enforce_user_input(self, verdict, "the request", self._requester)
        await enforce_user_input(self, system_verdict, "the system text", self._requester)
        if request.max_tokens > tuning.max_tokens_cap:
            self.flush_memo()
            raise ApplicationError(f"max_tokens {request.max_tokens} is above this platform's cap of "
                                   f"{tuning.max_tokens_cap}", type="InvalidRequest", non_retryable=True)
        if request.model is not None and pre.pool.get(request.model) is None:
            known = ", ".join(pre.pool.ids())
            self.flush_memo()
            raise ApplicationError(f"unknown model {request.model!r}; known models: {known}",
                                   type="UnknownModel", non_retryable=True)
        return pre

    async def _context(self, request: UserRequest, tuning: Tuning) -> RetrievedContext:
        """Top-k passages of the uploads. The chunk ids and hashes the model sees are in history (the activity
        result and the memo); the passages pass the guardrails as documents (hidden instructions count more)."""
        self.stage("retrieving")
        context = await act.rag_retrieve(RetrieveRequest(query=request.prompt[:MAX_QUERY_CHARS], k=request.rag_k),
                                         start_to_close_timeout=timedelta(seconds=120),
                                         retry_policy=act.llm_retry(tuning))
        self.upsert_memo({"rag": {"chunk_ids": context.chunk_ids, "chunk_sha256s": context.chunk_sha256s}})
        await self.scan(context.context, "document", "the retrieved passages", tuning, request.request_id)
        return context

    async def _similarity(self, prompt: str, tuning: Tuning) -> dict | None:
        """Embedding evidence for the classifier when the worker enables it; rules alone if it is off or fails."""
        if not tuning.router_embeddings:
            return None
        try:
            return (await act.router_similarity(SimilarityRequest(text=prompt))).scores
        except ActivityError as e:
            workflow.logger.warning("embedding similarity unavailable, routing by rules: %s", activity_error_message(e))
            return None

    @staticmethod
    def _system(request: UserRequest, context: RetrievedContext | None) -> str:
        system = request.system or DEFAULT_SYSTEM_PROMPT
        if context is not None and context.context:
            system += CITE + context.context
        return system

    async def _single(self, request: UserRequest, tuning: Tuning, classification: TaskClassification,
                      pool: PoolSnapshot, context: RetrievedContext | None,
                      allowlist: tuple[str, ...] | None = None) -> Answer:
        messages = [ChatMessage(role="system", content=self._system(request, context)),
                    ChatMessage(role="user", content=request.prompt)]
        if request.messages:  # a conversation (the OpenAI endpoint): the model sees it as given, plus any passages
            messages = list(request.messages)
            if context is not None and context.context:
                messages.insert(0, ChatMessage(role="system", content=self._system(request, context)))
        call = await self.call_model(allowlist=allowlist,
            classification=classification, snapshot=pool, model=request.model, request_id=request.request_id,
            tuning=tuning, max_tokens=request.max_tokens, temperature=request.temperature, messages=messages,
            json_schema=request.json_schema, chat_options=lambda: self.chat_options(request), streamed=request.stream)
        last = call.decisions[-1]
        return Answer(text=call.completion.text, model=call.model, spec=call.spec, author=call.spec,
                      task_type=last.task_type, reasons=last.reasons, usage=call.usage, attempts=call.attempts,
                      load_ms=call.load_ms, inference_ms=call.completion.inference_ms,
                      finish_reason=call.completion.finish_reason)

    async def _collaborate(self, request: UserRequest, tuning: Tuning, classification: TaskClassification, why: str,
                           pool: PoolSnapshot, context: RetrievedContext | None) -> Answer | None:
        """generalist -> coder (child) -> security reviewer (grandchild) -> coder revises -> generalist formats.
        None when the generalist may not delegate (then one model answers, as usual; the memo says why)."""
        general = TaskClassification(task_type=Capability.GENERAL, scores=classification.scores, reasons=[why])
        generalist = route(general, pool, request.request_id).chosen
        if generalist is None:
            self.upsert_memo({"collaboration": {"why": why, "skipped": "no general model is available"}})
            return None
        allowed = await act.permissions_check(PermissionRequest(
            actor=Actor.MODEL, operation=Operation.DELEGATE, model_id=generalist, capabilities=(Capability.GENERAL,),
            explanation="hand the code to a coder"))
        if not allowed.allowed:
            self.upsert_memo({"collaboration": {"why": why, "skipped": f"delegation denied: {allowed.reason}"}})
            return None
        self.stage("delegating", generalist)
        child_id = f"{workflow.info().workflow_id}-coder"
        scope = narrow(ROOT_SCOPE, Role.CODER)
        # The hop's texts: inline when small, else by reference (the child's input carries their hashes).
        task, system, passages = await texts_by_reference(
            [request.prompt, request.system or "", context.context if context is not None else ""],
            tuning.blob_threshold_bytes)
        coder: DelegationResult = await workflow.execute_child_workflow(
            "DelegationWorkflow",
            DelegationInput(request_id=request.request_id, from_model=generalist, role=Role.CODER,
                            depth=1, scope=scope, tuning=tuning, max_tokens=request.max_tokens,
                            temperature=request.temperature, **carried(task=task, system=system, passages=passages),
                            limits=DelegationLimits(max_depth=tuning.delegation_max_depth,
                                                    max_rounds=tuning.delegation_max_rounds)),
            id=child_id, result_type=DelegationResult, task_timeout=timedelta(seconds=tuning.workflow_task_timeout_s))
        records = [DelegationRecord(from_model=generalist, to=Role.CODER.value, model=coder.model,
                                    workflow_id=child_id, depth=1, scope=scope), *coder.delegations]
        delegations = [r.model_dump(mode="json", by_alias=True) for r in records]
        self.upsert_memo({"collaboration": {"why": why, "approved": coder.approved, "rounds": coder.rounds,
                                                "delegations": delegations}})
        self.stage("formatting", generalist)
        handover = format_prompt(request.prompt, coder)  # the coder's work, handed to the generalist
        await self.scan(handover, "delegation", "the hand-over to the generalist", tuning, request.request_id)
        formatted = await self.call_model(
            classification=general, request_id=request.request_id, tuning=tuning, max_tokens=request.max_tokens,
            temperature=request.temperature,
            messages=[ChatMessage(role="system", content=self._system(request, context)),
                      ChatMessage(role="user", content=handover)])
        text = formatted.completion.text
        if coder.output.strip() and coder.output.strip() not in text:
            text += "\n\n" + coder.output.strip()  # never lose the reviewed code in the formatting
        author = pool.get(coder.model)
        return Answer(
            text=text, model=formatted.model, spec=formatted.spec, author=author.spec if author else formatted.spec,
            task_type=classification.task_type, reasons=[*classification.reasons, why, *coder.notes],
            usage=Usage(prompt_tokens=coder.usage.prompt_tokens + formatted.usage.prompt_tokens,
                        completion_tokens=coder.usage.completion_tokens + formatted.usage.completion_tokens),
            attempts=formatted.attempts, load_ms=formatted.load_ms,
            inference_ms=formatted.completion.inference_ms, delegations=delegations,
            review_approved=coder.approved, plan="collaboration")

    async def _run_in_sandbox(self, answer: Answer, tuning: Tuning) -> SandboxOutcome | None:
        """Code the answer proposes runs only in a sandbox (a child workflow), reviewed by a person."""
        proposal = proposed_code(answer.text)
        if proposal is None:
            return None
        self.stage("sandbox", answer.model)
        language, code = proposal
        spec = answer.author
        sid = workflow.uuid4().hex[:16]
        return await workflow.execute_child_workflow(
            "SandboxWorkflow",
            SandboxInput(spec=SandboxSpec(code=code, language=language,
                                          origin=Origin(actor="model", model_id=spec.id, local=spec.local,
                                                        capabilities=tuple(c.value for c in spec.capabilities),
                                                        name=spec.id)),
                         sandbox_id=sid, review_timeout_s=tuning.sandbox_review_timeout_s,
                         approval_timeout_s=tuning.approval_timeout_s, requester=self._requester,
                         four_eyes=tuning.approvals_four_eyes),
            id=sandbox_workflow_id(sid), result_type=SandboxOutcome)

    async def _save(self, request: UserRequest, answer: Answer, tuning: Tuning) -> PermissionOutcome:
        """The model asks permission to write its answer (a child workflow: it may wait for a person)."""
        self.stage("saving", answer.model)
        spec = answer.spec
        ask = PermissionRequest(actor=Actor.MODEL, operation=Operation.WRITE, model_id=spec.id,
                                capabilities=spec.capabilities, path=request.save_as,
                                explanation=f"saving the answer to {request.save_as}, as the user asked")
        return await workflow.execute_child_workflow(
            "PermissionWorkflow",
            PermissionInput(request=ask, content=answer.text, approval_timeout_s=tuning.approval_timeout_s,
                            failure_threshold=tuning.permission_failure_threshold,
                            failure_window_s=tuning.permission_failure_window_s, requester=self._requester),
            id=f"{workflow.info().workflow_id}-save", result_type=PermissionOutcome)
