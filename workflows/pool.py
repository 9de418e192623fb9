"""PoolWorkflow: lets the CLI and API see and manage the worker's LLM pool (status, load, unload, health)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.llm import LLMActivities
    from domain.llm import ModelRef, PoolCommand
    from domain.pool import PoolSnapshot


@workflow.defn(name="PoolWorkflow")
class PoolWorkflow:
    @workflow.run
    async def run(self, command: PoolCommand) -> PoolSnapshot:
        once = RetryPolicy(maximum_attempts=1)
        long = timedelta(minutes=10)
        if command.action != "status" and command.model_id:
            ref = ModelRef(model_id=command.model_id)
            method = {"load": LLMActivities.load, "unload": LLMActivities.unload,
                      "health": LLMActivities.health}[command.action]
            await workflow.execute_activity_method(method, ref, start_to_close_timeout=long,
                                                   heartbeat_timeout=timedelta(seconds=5), retry_policy=once)
        return await workflow.execute_activity_method(
            LLMActivities.pool_status, command, start_to_close_timeout=timedelta(seconds=10), retry_policy=once)
