"""DelegationWorkflow: one hop of a collaboration between models (a child workflow per hop).

coder: write the code -> ask the security reviewer (a child hop) -> revise on findings -> ... (bounded rounds)
reviewer: return a structured verdict (approve, or changes with findings).
Every hand-over passes the guardrails as a hand-over; every hop asks permission to delegate; scopes only narrow.
Model calls go through the one model-call step (workflows/model_call.py) with the request's options.
A hop's texts (task, passages, system text, the code under review) travel by reference when they are larger than
the policy's blob threshold: prompts are composed of parts and stored whole by a local activity (blob_refs.py).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.delegation import (
        REVIEW_SCHEMA,
        DelegationInput,
        DelegationRecord,
        DelegationResult,
        Role,
        carried,
        coder_prompt,
        handover_text,
        narrow,
        parse_review,
        review_prompt,
        revise_prompt,
    )
    from domain.blobs import Part, PromptMessage, lit
    from domain.permissions import Actor, Operation, PermissionRequest
    from domain.registry import Capability
    from domain.requests import Usage
    from domain.routing import TaskClassification
    from workflows import activity_stubs as act
    from workflows.blob_refs import texts_by_reference
    from workflows.model_call import ModelCall, ModelCaller

CODER_SYSTEM = "You are a careful senior software engineer. Write secure, working code."
REVIEWER_SYSTEM = "You are a strict application security reviewer. Answer only with the requested JSON."
# The request's max_tokens bounds what is written for the user (code, the final answer); a reviewer's verdict is
# JSON the platform parses, so it has its own budget: cut short, it would not parse (and count as "changes").
REVIEW_MAX_TOKENS = 512


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(prompt_tokens=a.prompt_tokens + b.prompt_tokens,
                 completion_tokens=a.completion_tokens + b.completion_tokens)


@workflow.defn(name="DelegationWorkflow")
class DelegationWorkflow(ModelCaller):
    @workflow.run
    async def run(self, inp: DelegationInput) -> DelegationResult:
        await self.checkpoint()
        await self.scan(handover_text(inp), "delegation", f"the delegation to the {inp.role.value}", inp.tuning,
                        inp.request_id)
        if inp.role == Role.REVIEWER:
            return await self._review(inp)
        return await self._code(inp)

    async def _call(self, inp: DelegationInput, capability: Capability, why: str, system: str, prompt: list[Part],
                    max_tokens: int, json_schema: dict | None = None) -> ModelCall:
        system_parts = [lit(system)]
        if not inp.part("system").empty:  # the user's system text reaches every model of the request
            system_parts += [lit("\n"), inp.part("system")]
        return await self.call_model(
            classification=TaskClassification(task_type=capability, scores={}, reasons=[why]),
            request_id=inp.request_id, tuning=inp.tuning, max_tokens=max_tokens, temperature=inp.temperature,
            json_schema=json_schema, what=f"the {capability.value} answer",
            messages=[PromptMessage(role="system", parts=system_parts), PromptMessage(role="user", parts=prompt)])

    async def _review(self, inp: DelegationInput) -> DelegationResult:
        call = await self._call(inp, Capability.SECURITY, f"security review delegated by {inp.from_model}",
                                REVIEWER_SYSTEM, review_prompt(inp.part("task"), inp.part("context"), inp.round),
                                max_tokens=min(REVIEW_MAX_TOKENS, inp.tuning.max_tokens_cap), json_schema=REVIEW_SCHEMA)
        review = parse_review(call.completion.text)
        return DelegationResult(role=Role.REVIEWER, model=call.model, output=call.completion.text, review=review,
                                usage=call.usage)

    async def _code(self, inp: DelegationInput) -> DelegationResult:
        call = await self._call(inp, Capability.CODE, f"code task delegated by {inp.from_model}", CODER_SYSTEM,
                                coder_prompt(inp.part("task"), inp.part("passages")), max_tokens=inp.max_tokens)
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
            prompt = revise_prompt(inp.part("task"), result.output, review.review.findings)
            await self.scan(prompt, "delegation", "the reviewer's findings handed to the coder", inp.tuning,
                            inp.request_id)
            revised = await self._call(inp, Capability.CODE, "revision after a security review", CODER_SYSTEM,
                                       prompt, max_tokens=inp.max_tokens)
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
        decision = await act.permissions_check(PermissionRequest(
            actor=Actor.MODEL, operation=Operation.DELEGATE, model_id=result.model, capabilities=(Capability.CODE,),
            explanation="ask a security reviewer to check my code"))
        if not decision.allowed:
            result.notes.append(f"no review: delegation denied ({decision.reason})")
        return decision.allowed

    async def _ask_reviewer(self, inp: DelegationInput, result: DelegationResult, round_no: int
                            ) -> DelegationResult:
        child_id = f"{workflow.info().workflow_id}-review-{round_no}"
        scope = narrow(set(inp.scope), Role.REVIEWER)
        [code] = await texts_by_reference([result.output], inp.tuning.blob_threshold_bytes)  # the code under review
        review = await workflow.execute_child_workflow(
            "DelegationWorkflow",
            inp.model_copy(update=dict(from_model=result.model, role=Role.REVIEWER, depth=inp.depth + 1, scope=scope,
                                       round=round_no, **carried(context=code, passages=lit("")))),
            id=child_id, result_type=DelegationResult,
            task_timeout=timedelta(seconds=inp.tuning.workflow_task_timeout_s))
        result.usage = _add(result.usage, review.usage)
        result.delegations.append(DelegationRecord(from_model=result.model, to=Role.REVIEWER.value,
                                                   model=review.model, workflow_id=child_id, depth=inp.depth + 1,
                                                   scope=scope))
        result.delegations.extend(review.delegations)
        return review
