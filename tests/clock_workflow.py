"""A workflow that breaks the rules (reads the wall clock): the worker runs it unsandboxed, replay must refuse it."""

from __future__ import annotations

import time

from temporalio import workflow


@workflow.defn(name="ClockWorkflow")
class ClockWorkflow:
    @workflow.run
    async def run(self) -> float:
        return time.time()  # non-deterministic: a replay would compute another value
