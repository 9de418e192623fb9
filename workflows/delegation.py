"""DelegationWorkflow: one hop of a collaboration between models (a child workflow per hop).

coder: write the code -> ask the security reviewer (a child hop) -> revise on findings -> ... (bounded rounds)
reviewer: return a structured verdict (approve, or changes with findings).
Every delegation message passes the guardrails; every hop asks permission to delegate; scopes only narrow.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.permissions import PermissionActivities
    from activities.scanning import ScanActivities
    from domain.delegation import (
        REVIEW_SCHEMA,
        DelegationInput,
        DelegationRecord,
        DelegationResult,
        Role,
        coder_prompt,
        narrow,
        parse_review,
        review_prompt,
        revise_prompt,
    )
    from domain.permissions import Actor, Operation, PermissionRequest
    from domain.registry import Capability
    from domain.requests import ChatMessage, Usage
    from domain.scanning import ScanRequest
    from workflows.model_call import call_model, enforce
    from workflows.pausable import Pausable

_QUICK = dict(start_to_close_timeout=timedelta(seconds=30))
CODER_SYSTEM = "You are a careful senior software engineer. Write secure, working code."
REVIEWER_SYSTEM = "You are a strict application security reviewer. Answer only with the requested JSON."


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(prompt_tokens=a.prompt_tokens + b.prompt_tokens,
                 completion_tokens=a.completion_tokens + b.completion_tokens)


@workflow.defn(name="DelegationWorkflow")
class DelegationWorkflow(Pausable):
    @workflow.run
    async def run(self, inp: DelegationInput) -> DelegationResult:
        await self.checkpoint()
        verdict = await workflow.execute_local_activity_method(
            ScanActivities.scan, ScanRequest(text=f"{inp.task}\n{inp.context}", kind="prompt", source="delegation",
                                             semantic=inp.tuning.guard_semantic),
            start_to_close_timeout=timedelta(seconds=60))
        await enforce(verdict, f"the delegation to the {inp.role.value}")
        if inp.role == Role.REVIEWER:
            return await self._review(inp)
        return await self._code(inp)

    async def _review(self, inp: DelegationInput) -> DelegationResult:
        call = await call_model(
            self, capability=Capability.SECURITY, request_id=inp.request_id, tuning=inp.tuning,
            why=f"security review delegated by {inp.from_model}", json_schema=REVIEW_SCHEMA,
            max_tokens=min(inp.max_tokens, 256),
            messages=[ChatMessage(role="system", content=REVIEWER_SYSTEM),
                      ChatMessage(role="user", content=review_prompt(inp.task, inp.context, inp.round))])
        review = parse_review(call.completion.text)
        return DelegationResult(role=Role.REVIEWER, model=call.model, output=call.completion.text, review=review,
                                usage=call.usage)

    async def _code(self, inp: DelegationInput) -> DelegationResult:
        call = await call_model(
            self, capability=Capability.CODE, request_id=inp.request_id, tuning=inp.tuning,
            why=f"code task delegated by {inp.from_model}", max_tokens=inp.max_tokens,
            messages=[ChatMessage(role="system", content=CODER_SYSTEM),
                      ChatMessage(role="user", content=coder_prompt(inp.task))])
        result = DelegationResult(role=Role.CODER, model=call.model, output=call.completion.text, usage=call.usage)
        for round_no in range(1, inp.limits.max_rounds + 1):
            if not await self._may_delegate(inp, result):
                break
            review = await self._ask_reviewer(inp, result, round_no)
            result.rounds = round_no
            result.review = review.review
            result.reviews.append(review.review)
            if review.review.verdict == "approve":
                result.approved = True
                break
            result.approved = False
            if round_no == inp.limits.max_rounds:
                result.notes.append(f"not approved after {round_no} review round(s): the limit")
                break
            revised = await call_model(
                self, capability=Capability.CODE, request_id=inp.request_id, tuning=inp.tuning,
                why="revision after a security review", max_tokens=inp.max_tokens,
                messages=[ChatMessage(role="system", content=CODER_SYSTEM),
                          ChatMessage(role="user", content=revise_prompt(inp.task, result.output,
                                                                         review.review.findings))])
            result.output, result.usage = revised.completion.text, _add(result.usage, revised.usage)
        return result

    async def _may_delegate(self, inp: DelegationInput, result: DelegationResult) -> bool:
        """Depth, scope and the permission policy all have to agree; the reason is recorded when they do not."""
        if inp.depth >= inp.limits.max_depth:
            result.notes.append(f"no review: depth limit {inp.limits.max_depth} reached")
            return False
        if Operation.DELEGATE not in inp.scope:
            result.notes.append("no review: this hop's scope does not include delegation")
            return False
        decision = await workflow.execute_activity_method(
            PermissionActivities.check,
            PermissionRequest(actor=Actor.MODEL, operation=Operation.DELEGATE, model_id=result.model,
                              capabilities=(Capability.CODE,), explanation="ask a security reviewer to check my code"),
            **_QUICK)
        if not decision.allowed:
            result.notes.append(f"no review: delegation denied ({decision.reason})")
        return decision.allowed

    async def _ask_reviewer(self, inp: DelegationInput, result: DelegationResult, round_no: int
                            ) -> DelegationResult:
        child_id = f"{workflow.info().workflow_id}-review-{round_no}"
        scope = narrow(set(inp.scope), Role.REVIEWER)
        review = await workflow.execute_child_workflow(
            DelegationWorkflow.run,
            DelegationInput(request_id=inp.request_id, from_model=result.model, role=Role.REVIEWER, task=inp.task,
                            context=result.output, depth=inp.depth + 1, scope=scope, limits=inp.limits,
                            tuning=inp.tuning, round=round_no, max_tokens=inp.max_tokens),
            id=child_id)
        result.usage = _add(result.usage, review.usage)
        result.delegations.append(DelegationRecord(from_model=result.model, to=Role.REVIEWER.value,
                                                   model=review.model, workflow_id=child_id, depth=inp.depth + 1,
                                                   scope=scope))
        result.delegations.extend(review.delegations)
        return review
