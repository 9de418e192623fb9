"""The baseline for bench/pipeline.py: the smallest useful workflow, one activity calling the same model."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from activities.llm_pool import LLMPool
    from domain.requests import ChatMessage


class BareActivities:
    def __init__(self, pool: LLMPool, model_id: str) -> None:
        self.pool = pool
        self.model_id = model_id

    @activity.defn(name="bench.bare_complete")
    def complete(self, prompt: str) -> str:
        with self.pool.in_flight(self.model_id) as provider:
            return provider.complete([ChatMessage(role="user", content=prompt)], 16, 0.0).text


@workflow.defn(name="BareWorkflow")
class BareWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        return await workflow.execute_activity("bench.bare_complete", prompt,
                                               start_to_close_timeout=timedelta(seconds=30))
