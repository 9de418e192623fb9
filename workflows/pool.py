"""PoolWorkflow: lets the CLI and API see and manage the worker's LLM pool (status, load, unload, health)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain.llm import ModelRef, PoolCommand
    from domain.pool import PoolSnapshot
    from workflows import activity_stubs as act


@workflow.defn(name="PoolWorkflow")
class PoolWorkflow:
    @workflow.run
    async def run(self, command: PoolCommand) -> PoolSnapshot:
        once = RetryPolicy(maximum_attempts=1)
        if command.action != "status" and command.model_id:
            stub = {"load": act.llm_load, "unload": act.llm_unload, "health": act.llm_health}[command.action]
            await stub(ModelRef(model_id=command.model_id), start_to_close_timeout=timedelta(minutes=10),
                       heartbeat_timeout=timedelta(seconds=5), retry_policy=once)
        return await act.llm_pool_status(command, retry_policy=once)
