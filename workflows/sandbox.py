"""SandboxWorkflow: code runs only in a sandbox, its output is reviewed by a person, the sandbox is always destroyed.

guardrails (critical -> lockdown, nothing runs) -> [model: sandbox permission] -> isolation policy -> [network
permission per host] -> create -> configure -> execute -> review (waits durably for `decide`, unless approved up
front) -> approve: deliver files to downloads/ through the policy | reject: discard -> destroy (always: also on
failure and cancellation, in a scope that cannot be cancelled). Every step and decision is in history (memo).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.activity_inputs import SandboxSupport, StatusRequest
    from workflows import activity_stubs as act
    from domain.approvals import PermissionInput, PermissionOutcome, refusal
    from domain.guardrails.consequence import Consequence, consequence
    from domain.principals import FORBIDDEN
    from domain.lockdown import EngageRequest, Trigger
    from domain.permissions import Actor, Operation, PermissionRequest
    from domain.registry import Capability
    from domain.sandbox import (
        ConfigureRequest,
        CreateRequest,
        DeliverRequest,
        ExecRequest,
        ExecResult,
        IsolationUnavailable,
        ReviewDecision,
        ReviewView,
        SandboxInput,
        SandboxOutcome,
        SandboxRef,
        Step,
        choose_isolation,
        clip,
        delivery_folder,
    )
    from domain.scanning import ScanRequest, blocked_message, is_security_alert, summary
    from workflows.pausable import Pausable, interrupted_epoch
    from workflows.permission import PermissionWorkflow
    from workflows.search_attributes import AWAITING_APPROVAL

_QUICK = act.QUICK
_DESTROY = dict(start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(
                    seconds=10)))  # retried until it succeeds: a sandbox is never left behind


@workflow.defn(name="SandboxWorkflow")
class SandboxWorkflow(Pausable):
    def __init__(self) -> None:
        super().__init__()
        self._inp: SandboxInput | None = None
        self._step = Step.CREATED
        self._steps: list[str] = []
        self._backend = None
        self._isolation = ""
        self._result: ExecResult | None = None
        self._decision: ReviewDecision | None = None
        self._reviewing = False

    @workflow.query(name="view")
    def view(self) -> ReviewView | None:
        if self._inp is None:
            return None
        spec = self._inp.spec
        return ReviewView(workflow_id=workflow.info().workflow_id, sandbox_id=self._inp.sandbox_id, step=self._step,
                          backend=self._backend, isolation_reason=self._isolation, code=spec.text_to_scan(),
                          argv=spec.argv(), origin=spec.origin, result=self._result,
                          network_hosts=list(spec.network_hosts), history=self._steps)

    @workflow.update(name="decide")
    async def decide(self, decision: ReviewDecision) -> str:
        self._decision = decision
        return "approved" if decision.approve else "rejected"

    @decide.validator
    def _only_while_reviewing(self, decision: ReviewDecision) -> None:
        if not self._reviewing or self._decision is not None or self._inp is None:
            raise ValueError("this sandbox is not waiting for a review")
        why = self._refusal(decision)
        if why is not None:
            raise ApplicationError(f"not allowed to review: {why}", type=FORBIDDEN, non_retryable=True)

    def _refusal(self, decision: ReviewDecision) -> str | None:
        """Only an approver reviews, never their own request, except the output of code they wrote themselves."""
        assert self._inp is not None
        return refusal(decision.principal, self._inp.requester, self._inp.four_eyes,
                       own_code=self._inp.spec.origin.actor == "user")

    def _record(self, step: Step, detail: str = "") -> None:
        self._step = step
        self._steps.append(f"{step.value}: {detail}" if detail else step.value)
        workflow.upsert_memo({"steps": self._steps})

    @workflow.run
    async def run(self, inp: SandboxInput) -> SandboxOutcome:
        self._inp = inp
        spec, wid = inp.spec, workflow.info().workflow_id
        outcome = SandboxOutcome(workflow_id=wid, sandbox_id=inp.sandbox_id, status="failed")
        await self.checkpoint()

        verdict = await act.guard_scan(
            ScanRequest(text=spec.text_to_scan(), kind=spec.scan_kind(), source="model_output",
                        path=spec.entry_file() if spec.code is not None else None),
            start_to_close_timeout=timedelta(seconds=60))
        workflow.upsert_memo({"guardrails": summary(verdict)})
        action = Consequence.RUN
        if verdict.verdict == "block":
            # A person's own code is contained by the sandbox (stronger backend, reviewed output); only what a model
            # proposes is refused, and locks the platform down at critical risk.
            action = consequence(verdict, spec.origin.actor) if workflow.patched("guard-consequence-by-origin") \
                else (Consequence.LOCKDOWN if is_security_alert(verdict) else Consequence.BLOCK)
        if action in (Consequence.BLOCK, Consequence.LOCKDOWN):
            reason = blocked_message(verdict, "the sandbox code")
            if action == Consequence.LOCKDOWN:
                await act.lockdown_alert(EngageRequest(
                    reason=reason, trigger=Trigger.SECURITY_ALERT, actor=f"workflow:{wid}"), **_QUICK)
                reason += "; lockdown engaged"
            self._record(Step.BLOCKED, reason)
            return self._finish(outcome, "blocked", reason)

        if spec.origin.actor == "model":
            allowed = await self._permission(Operation.SANDBOX, None, "-run")
            if not allowed.decision.allowed:
                self._record(Step.REJECTED, f"sandbox permission: {allowed.decision.reason}")
                return self._finish(outcome, "rejected", allowed.decision.reason, by=allowed.decided_by)

        support = await act.sandbox_support(StatusRequest(), start_to_close_timeout=timedelta(seconds=10))
        try:
            choice = choose_isolation(spec, verdict.risk.value, support.microvm)
        except IsolationUnavailable as e:
            self._record(Step.FAILED, str(e))
            return self._finish(outcome, "failed", str(e))
        self._backend, self._isolation = choice.backend, choice.reason
        outcome.backend, outcome.isolation_reason = choice.backend, choice.reason
        workflow.upsert_memo({"isolation": choice.model_dump(mode="json")})

        network = await self._network(inp, support)
        outcome.network = network
        ref = SandboxRef(sandbox_id=inp.sandbox_id, workflow_id=wid)
        try:
            await self.guarded(lambda: act.sandbox_create(
                CreateRequest(**ref.model_dump(), backend=choice.backend, limits=spec.limits), **_QUICK))
            self._record(Step.CREATED, f"{choice.backend.value} ({choice.reason})")
            files = spec.all_files()
            await act.sandbox_configure(ConfigureRequest(**ref.model_dump(), files=files), **_QUICK)
            self._record(Step.CONFIGURED, f"{len(files)} file(s), limits {spec.limits.model_dump()}, "
                                          f"network {'granted' if network else 'off'}")
            self._record(Step.EXECUTING, " ".join(spec.argv())[:500])
            try:
                result = await self._execute_unless_refused(ref, inp, network)
            except ActivityError as e:
                reason = f"the run did not complete: {e.cause or e}"
                self._record(Step.FAILED, reason)
                return self._finish(outcome, "failed", reason)
            if isinstance(result, ReviewDecision):
                return self._finish(outcome, "interrupted", result.note or "interrupted by a lockdown",
                                    by=result.by)
            result.stdout, result.stderr = clip(result.stdout), clip(result.stderr)
            self._result = result
            outcome = self._with_result(outcome, result)
            self._record(Step.REVIEWING, f"exit {result.exit_code}, stopped {result.stopped}, "
                                         f"{len(result.files)} file(s)")
            decision = await self._review(inp)
            outcome.decided_by = decision.principal.label if decision.principal is not None else decision.by
            if not decision.approve:
                self._record(Step.REJECTED, f"by {outcome.decided_by}" + (f": {decision.note}" if decision.note else ""))
                return self._finish(outcome, "rejected", decision.note or "rejected")
            self._record(Step.APPROVED, f"by {outcome.decided_by}" + (f": {decision.note}" if decision.note else ""))
            if result.files:
                outcome.delivered = await self.guarded(lambda: act.sandbox_deliver(
                    DeliverRequest(**ref.model_dump(), files=result.files, origin=spec.origin,
                                   folder=delivery_folder(inp.sandbox_id)), **_QUICK))
                self._record(Step.DELIVERED, ", ".join(f"{d.path}: {d.decision}" for d in outcome.delivered))
            return self._finish(outcome, "approved", decision.note)
        finally:
            # Also on failure and on cancellation: shielded, so a second cancel cannot skip it.
            await asyncio.shield(asyncio.ensure_future(self._destroy(ref, outcome)))

    async def _destroy(self, ref: SandboxRef, outcome: SandboxOutcome) -> None:
        await act.sandbox_destroy(ref, **_DESTROY)
        outcome.destroyed = True
        self._record(Step.DESTROYED)
        outcome.steps = list(self._steps)

    async def _execute(self, ref: SandboxRef, inp: SandboxInput, network: bool) -> ExecResult:
        spec = inp.spec
        boot = 60 if self._backend is not None and self._backend.value == "microvm" else 10
        return await act.sandbox_execute(
            ExecRequest(**ref.model_dump(), backend=self._backend, argv=spec.argv(), limits=spec.limits,
                        network=network, network_hosts=list(spec.network_hosts) if network else [],
                        model_code=spec.origin.actor == "model", inputs=sorted(spec.all_files())),
            start_to_close_timeout=timedelta(seconds=spec.limits.wall_s + boot + 30),
            heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_s),
            # Model code never runs twice behind anyone's back: a run lost with its worker fails, and is destroyed.
            retry_policy=RetryPolicy(maximum_attempts=1))

    async def _execute_unless_refused(self, ref: SandboxRef, inp: SandboxInput,
                                      network: bool) -> ExecResult | ReviewDecision:
        """Run; a run a lockdown killed never runs again by itself: after release a person decides (`decide`:
        approve = run it again). Returns the result, or the decision not to run it again."""
        while True:
            try:
                return await self.guarded(lambda: self._execute(ref, inp, network), rerun_interrupted=False)
            except ActivityError as e:
                epoch = interrupted_epoch(e)
                if epoch is None:
                    raise
            self._record(Step.INTERRUPTED, f"lockdown (epoch {epoch}) killed the run; after release a person "
                                           "decides whether it runs again")
            self._prompted = True  # re-read the state (workflows/pausable.py), wait for the release
            await self.checkpoint()
            self._decision = None
            self._record(Step.INTERRUPTED, "released: waiting for a person to decide whether it runs again")
            decision = await self._review(inp, up_front=False)
            if not decision.approve:
                self._record(Step.REJECTED, f"not run again, by {decision.by}"
                                            + (f": {decision.note}" if decision.note else ""))
                return decision
            self._record(Step.EXECUTING, f"again, approved by {decision.by}")
            self._decision = None

    async def _review(self, inp: SandboxInput, up_front: bool = True) -> ReviewDecision:
        if up_front and inp.approve is not None:
            why = self._refusal(inp.approve)
            if why is None:
                self._decision = inp.approve
                return inp.approve
            self._record(Step.REVIEWING, f"approval given up front refused ({why}); waiting for a reviewer")
        self._reviewing = True
        workflow.upsert_search_attributes([AWAITING_APPROVAL.value_set(True)])
        try:
            await workflow.wait_condition(lambda: self._decision is not None,
                                          timeout=timedelta(seconds=inp.review_timeout_s))
        except asyncio.TimeoutError:
            self._decision = ReviewDecision(approve=False, by="timeout",
                                            note=f"no review within {inp.review_timeout_s:.0f}s")
        finally:
            self._reviewing = False
            workflow.upsert_search_attributes([AWAITING_APPROVAL.value_set(False)])
        assert self._decision is not None
        return self._decision

    async def _network(self, inp: SandboxInput, support: SandboxSupport) -> bool:
        """Network stays off unless every host the code needs is explicitly granted (a permission request each)."""
        hosts = inp.spec.network_hosts
        if not hosts:
            return False
        if self._backend is not None and self._backend.value == "microvm":
            self._record(Step.CONFIGURED, "network refused: the microVM has no network device")
            return False
        for i, host in enumerate(hosts):
            outcome = await self._permission(Operation.NETWORK, host, f"-net{i}")
            if not outcome.decision.allowed:
                workflow.upsert_memo({"network": f"off: {host}: {outcome.decision.reason}"})
                return False
        workflow.upsert_memo({"network": f"granted: {', '.join(hosts)}"})
        return True

    async def _permission(self, op: Operation, host: str | None, suffix: str) -> PermissionOutcome:
        inp = self._inp
        assert inp is not None
        origin = inp.spec.origin
        model = origin.actor == "model"
        ask = PermissionRequest(
            actor=Actor.MODEL if model else Actor.USER, operation=op, host=host,
            model_id=origin.model_id if model else None,
            capabilities=tuple(Capability(c) for c in origin.capabilities if c in Capability._value2member_map_),
            explanation=f"sandbox {inp.sandbox_id}: " + ("reach " + host if host else "run code"))
        return await workflow.execute_child_workflow(
            PermissionWorkflow.run, PermissionInput(request=ask, approval_timeout_s=inp.approval_timeout_s),
            id=f"{workflow.info().workflow_id}{suffix}")

    @staticmethod
    def _with_result(outcome: SandboxOutcome, r: ExecResult) -> SandboxOutcome:
        return outcome.model_copy(update=dict(exit_code=r.exit_code, stdout=r.stdout, stderr=r.stderr,
                                              stopped=r.stopped, limits_hit=r.limits_hit, truncated=r.truncated,
                                              duration_ms=r.duration_ms, files=r.files, egress=r.egress,
                                              stdout_sha256=r.stdout_sha256, stderr_sha256=r.stderr_sha256))

    def _finish(self, outcome: SandboxOutcome, status: str, reason: str, by: str | None = None) -> SandboxOutcome:
        outcome.status = status  # type: ignore[assignment]
        outcome.reason = reason
        if by is not None:
            outcome.decided_by = by
        outcome.steps = list(self._steps)
        return outcome
