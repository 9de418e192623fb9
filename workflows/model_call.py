"""The one model-call step, used by every workflow that asks a model (requests, delegation hops, the guard judge):

route -> [load] -> complete -> fall back (and cool the failed model down) -> the judge's second opinion on the
output (when the policy names a judge) -> enforce the output's verdict, with the decisions recorded (memo
`routing`, search attributes TaskType/Model), large prompts sent by hash, and every option of the caller honoured
(temperature, max_tokens, json schema, a forced model).

The guard judge is itself a call of this step (forced to the policy's judge model, JSON schema, temperature 0):
`second_opinion` asks it wherever the semantic layer scans (the request's prompt and system text, hand-overs,
passages, model outputs) and joins its parsed opinion to the verdict in workflow code (domain/guardrails/judge.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from domain.blobs import Part, PromptMessage, lit
    from domain.guardrails import Risk, Verdict
    from domain.guardrails.judge import (JUDGE_MAX_TOKENS, JUDGE_SCHEMA, JUDGE_TEMPERATURE, judge_prompt,
                                         parse_judge, wants_judge, with_judge)
    from domain.llm import MISPLACED, Completion, CompletionRequest, ModelFailure, ModelRef, PoolCommand
    from domain.lockdown import EngageRequest, Trigger
    from domain.pool import PoolSnapshot
    from domain.registry import Capability, ModelSpec
    from domain.requests import Attempt, Usage
    from domain.routing import RoutingDecision, TaskClassification, route
    from domain.scanning import ScanRequest, blocked_message, is_security_alert, summary
    from domain.tuning import Tuning
    from workflows import activity_stubs as act
    from workflows.blob_refs import Message, by_reference, compose_by_reference
    from workflows.pausable import Pausable
    from workflows.search_attributes import MODEL, TASK_TYPE


@dataclass
class ModelCall:
    completion: Completion
    model: str
    spec: ModelSpec
    decisions: list[RoutingDecision]
    attempts: list[Attempt] = field(default_factory=list)
    load_ms: float = 0.0

    @property
    def usage(self) -> Usage:
        return Usage(prompt_tokens=self.completion.prompt_tokens, completion_tokens=self.completion.completion_tokens)


# Histories recorded before the judge was a model call of the workflow asked it inside the scan activity.
JUDGE_PATCH = "guard-judge-model-call"


def activity_error_message(e: ActivityError) -> str:
    return str(e.cause) if e.cause is not None else str(e)


def _retryable(e: ActivityError) -> bool:
    return isinstance(e.cause, ApplicationError) and not e.cause.non_retryable


def _without(snapshot: PoolSnapshot, gone: set[str]) -> PoolSnapshot:
    """The pool without workers that stopped answering, unless nothing else is left (then try them again)."""
    remaining = snapshot
    for queue in sorted(gone):
        remaining = remaining.without_queue(queue)
    return remaining if remaining.models else snapshot


def _options(tuning: Tuning, queue: str | None, eager: bool = False) -> dict:
    """A call bound to one worker's pool goes to that worker's queue, tried once per dispatch: this workflow retries
    transient errors there itself, and routes again when the worker is gone (a retry would wait in its queue).
    `eager`: the pool is the one of the worker running this workflow, so the call goes on the workflow's own queue,
    where the server hands it straight back to this worker with the workflow task's completion (eager activity
    execution: no trip through the pool's queue; the activity refuses to run anywhere else)."""
    options = act.llm_options(tuning)
    if queue is not None:
        options.update(retry_policy=RetryPolicy(maximum_attempts=1),
                       schedule_to_start_timeout=timedelta(seconds=tuning.pool_schedule_to_start_s))
        if not eager:
            options.update(task_queue=queue)
    return options


def _runs_here(tuning: Tuning, snapshot: PoolSnapshot, model_id: str, queue: str | None, max_tokens: int,
               streamed: bool) -> bool:
    """Whether the call runs as a LOCAL activity, inside this workflow task: the worker running the workflow serves
    the model (routing placed the call on this worker's pool, or on any worker), has it loaded, and expects the call
    to take at most the policy's `local_call_max_ms` (its measured time per token x max_tokens). Saves the call's
    dispatch and a second workflow task (a round trip through Temporal each). Never for a streamed call: its
    batches are signals to this workflow, which a workflow task busy with the call would hold back. A worker that
    dies during such a call is noticed when the workflow task times out (the policy's `workflow_task_timeout_s`
    for child workflows, the client's setting for requests), and the call runs again elsewhere."""
    if streamed or tuning.local_call_max_ms <= 0 or snapshot.here is None or queue not in (None, snapshot.here):
        return False
    mine = snapshot.get(model_id, snapshot.here)
    return (mine is not None and mine.loaded and mine.ms_per_token is not None
            and mine.ms_per_token * max_tokens <= tuning.local_call_max_ms)


def _misplaced(e: ActivityError) -> bool:
    return isinstance(e.cause, ApplicationError) and e.cause.type == MISPLACED


class ModelCaller(Pausable):
    """A workflow that calls models: the model-call step, scans at scan points, verdicts enforced and recorded."""

    def __init__(self) -> None:
        super().__init__()
        self._verdicts: dict[str, dict] = {}
        self._decisions: list[RoutingDecision] = []
        self._judged: list[dict] = []
        self._memo_pending: dict = {}  # memo fields written with the next upsert (one command instead of two)

    def upsert_memo(self, fields: dict, later: bool = False) -> None:
        """Upsert memo fields, with any held back; `later`: hold these back until the next upsert (or flush)."""
        self._memo_pending.update(fields)
        if not later:
            self.flush_memo()

    def flush_memo(self) -> None:
        if self._memo_pending:
            fields, self._memo_pending = self._memo_pending, {}
            workflow.upsert_memo(fields)

    def stage(self, name: str, model: str | None = None) -> None:
        """Where the workflow is (RequestWorkflow shows it in its `progress` query)."""

    async def enforce(self, verdict: Verdict | None, what: str) -> None:
        """A block fails the step, and a critical hit (a SecurityAlert) locks the platform down first. Findings go
        to the memo, where the UI shows them (the verdict itself is already in history as an activity result)."""
        if verdict is None or verdict.risk == Risk.NONE:
            return
        self._verdicts[what] = summary(verdict)
        self.upsert_memo({"guardrails": self._verdicts})
        if verdict.verdict != "block":
            return
        if is_security_alert(verdict):
            await act.lockdown_alert(EngageRequest(reason=blocked_message(verdict, what), trigger=Trigger.SECURITY_ALERT,
                                                   actor=f"workflow:{workflow.info().workflow_id}"))
        raise ApplicationError(blocked_message(verdict, what), summary(verdict), type="Blocked", non_retryable=True)

    async def scan(self, text: str | list[Part], source: str, what: str, tuning: Tuning,
                   request_id: str | None = None) -> None:
        """A text at its scan point (a hand-over, passages, ...): scanned, the judge asked when the policy says so,
        the verdict recorded and enforced. A text with parts held by reference is composed and stored by a local
        activity, and the scan reads it by reference (its text never enters history)."""
        held = await compose_by_reference([lit(text)] if isinstance(text, str) else text)
        if held.ref is None and not held.text.strip():
            return
        verdict = await act.guard_scan(ScanRequest(text=held.text, text_ref=held.ref, kind="prompt", source=source,
                                                   semantic=tuning.guard_semantic))
        verdict = await self.second_opinion(verdict, held, "prompt", what, tuning, request_id)
        await self.enforce(verdict, what)

    async def second_opinion(self, verdict: Verdict, text: Part, kind: str, what: str, tuning: Tuning,
                             request_id: str | None, snapshot: PoolSnapshot | None = None) -> Verdict:
        """The guard judge's opinion on `text`, when the policy names a judge and the semantic layer is on: a model
        call of this step (routed, recorded, fallback and cooldown, paused by a lockdown), parsed and joined here.
        Fail-safe as always: a judge that fails or answers garbage gives no opinion, the verdict stands."""
        judge = tuning.guard_judge_model
        if not wants_judge(verdict, tuning.guard_semantic, judge) or not workflow.patched(JUDGE_PATCH):
            return verdict
        assert judge is not None
        try:
            call = await self.call_model(
                classification=TaskClassification(task_type=Capability.SECURITY, scores={},
                                                  reasons=[f"the guard judge's second opinion on {what}"]),
                messages=[PromptMessage(role="user", parts=judge_prompt(text, kind))],
                request_id=request_id or workflow.info().workflow_id, tuning=tuning, snapshot=snapshot, model=judge,
                max_tokens=JUDGE_MAX_TOKENS, temperature=JUDGE_TEMPERATURE, json_schema=JUDGE_SCHEMA,
                what=f"the judge's opinion on {what}", judge=True)
        except (ActivityError, ApplicationError) as e:
            error = activity_error_message(e) if isinstance(e, ActivityError) else str(e)
            workflow.logger.warning("the guard judge gave no opinion on %s: %s", what, error)
            self._judge_note(what, judge, None, f"no opinion (the call failed: {error[:200]})")
            return verdict
        opinion = parse_judge(call.completion.text)
        self._judge_note(what, call.model, opinion.risk.value if opinion is not None else None,
                         "opinion" if opinion is not None else "no opinion (the reply was not a valid verdict)")
        return with_judge(verdict, opinion)

    def _judge_note(self, what: str, model: str, risk: str | None, outcome: str) -> None:
        """What the judge said, per scan point, in the memo (its risk, never its reason: that may quote the text)."""
        self._judged.append({"what": what, "model": model, "risk": risk, "outcome": outcome})
        self.upsert_memo({"judge": self._judged})

    def record(self, decision: RoutingDecision, shown: bool = True) -> None:
        """Every routing decision and its reasons into history (memo) and the UI (search attributes; `shown`
        False for the judge's calls, so the UI names the model that answered)."""
        self._decisions.append(decision)
        self.upsert_memo({"routing": [d.model_dump(mode="json") for d in self._decisions]})
        if shown:
            workflow.upsert_search_attributes([TASK_TYPE.value_set(decision.task_type.value),
                                               MODEL.value_set(decision.chosen or "none")])

    async def call_model(self, *, classification: TaskClassification, messages: list[Message], request_id: str,
                         tuning: Tuning, snapshot: PoolSnapshot | None = None, model: str | None = None,
                         max_tokens: int = 256, temperature: float = 0.2, json_schema: dict | None = None,
                         what: str = "the answer", allowlist: tuple[str, ...] | None = None,
                         chat_options: Callable[[], dict] | None = None, judge: bool = False,
                         streamed: bool = False) -> ModelCall:
        """`messages`: chat messages, or messages composed of parts (some held by reference). `allowlist`: the
        caller's models (a key's allowlist); the router never picks another. `chat_options`: the OpenAI endpoint's
        per-call options (stop, JSON mode, streaming, resume), asked for each attempt; `streamed`: the answer streams
        (the call is then never a local activity, see `_runs_here`). `judge`: this is the guard judge's call: its
        reply is data parsed by the caller (never shown to anyone), so it is not scanned and asks
        no judge itself, and it does not change the workflow's stage or its Model search attribute."""
        stage = (lambda name, model_id: None) if judge else self.stage
        if snapshot is None:
            snapshot = await act.llm_pool_snapshot(PoolCommand(action="status"))
        refs = await by_reference(messages, tuning.blob_threshold_bytes)  # large prompts: a hash in history
        excluded: dict[str, str] = {} if allowlist is None else {
            m: "not in the caller's model allowlist" for m in snapshot.ids() if m not in allowlist}
        gone: set[str] = set()  # worker queues that stopped answering during this call
        decisions: list[RoutingDecision] = []
        attempts: list[Attempt] = []
        load_ms = 0.0
        tries = 0
        eager_ok = True  # until a call sent eagerly reached another worker
        while True:
            decision = route(classification, snapshot, request_id, model, excluded)
            decisions.append(decision)
            self.record(decision, shown=not judge)
            if decision.chosen is None:
                details = "; ".join(f"{m}: {why}" for m, why in decision.skipped.items()) or "no candidates"
                raise ApplicationError(f"no model could answer this {decision.task_type.value} request ({details})",
                                       decision.model_dump(mode="json"), type="NoModelAvailable", non_retryable=True)
            model_id, queue = decision.chosen, decision.placement
            status = snapshot.get(model_id, queue)
            assert status is not None
            # snapshot.here: this workflow's worker's pool queue (None in runs recorded before it existed).
            here = eager_ok and _runs_here(tuning, snapshot, model_id, queue, max_tokens, streamed)
            eager = not here and eager_ok and queue is not None and queue == snapshot.here and status.loaded
            options = _options(tuning, queue, eager)
            complete = act.llm_complete
            if here:
                complete, options = act.llm_complete_here, act.llm_options(tuning)
            try:
                if not status.loaded:
                    stage("loading", model_id)
                    loaded = await self.guarded(lambda: act.llm_load(ModelRef(model_id=model_id), **options))
                    load_ms += loaded.load_ms
                stage("generating", model_id)
                completion = await self.guarded(lambda: complete(CompletionRequest(
                    model_id=model_id, **refs, max_tokens=max_tokens, temperature=temperature, request_id=request_id,
                    scan_output=not judge, scan_semantic=tuning.guard_semantic and not judge, json_schema=json_schema,
                    placement=queue if eager else None,
                    **(chat_options() if chat_options is not None else {})), **options))
            except ActivityError as e:
                if eager and _misplaced(e):  # another worker took it from the workflow's queue: send it to the pool's
                    eager_ok = False
                    continue
                error = activity_error_message(e)
                attempts.append(Attempt(model=model_id, ok=False, error=error))
                tries += 1
                if queue is not None and tries < tuning.llm_max_attempts:
                    if isinstance(e.cause, TimeoutError):
                        # The worker died (no heartbeat, or it no longer publishes its pool) or is busy: route again
                        # on a fresh view of the pool, without that worker unless it is alive and only busy.
                        fresh = await act.llm_pool_snapshot(PoolCommand(action="status"))
                        busy = e.cause.type == TimeoutType.SCHEDULE_TO_START and any(
                            m.task_queue == queue for m in fresh.models)
                        if busy:
                            tries -= 1
                        else:
                            gone.add(queue)
                        snapshot = _without(fresh, gone)
                        continue
                    if _retryable(e):  # a transient error: the same model again, after a backoff
                        await workflow.sleep(timedelta(seconds=min(
                            10.0, tuning.retry_initial_interval_s * 2 ** (tries - 1))))
                        continue
                tries = 0
                excluded[model_id] = error
                snapshot = await act.llm_report_failure(ModelFailure(model_id=model_id, error=error, task_queue=queue))
                continue
            attempts.append(Attempt(model=model_id, ok=True))
            if not judge:
                verdict = await self.second_opinion(completion.verdict, lit(completion.text), "prompt",
                                                    f"{what} of {model_id}", tuning, request_id)
                if verdict is not completion.verdict:
                    completion = completion.model_copy(update={"verdict": verdict})
                await self.enforce(verdict, f"{what} of {model_id}")
            return ModelCall(completion=completion, model=model_id, spec=status.spec, decisions=decisions,
                             attempts=attempts, load_ms=load_ms + completion.load_ms)
