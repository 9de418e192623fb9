"""The worker runs workflow code unsandboxed (workflows/passthrough.py); determinism is proved by replaying histories
under the SDK's full sandbox. A workflow that reads the clock runs, and its replay is refused."""

from __future__ import annotations

import uuid

from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from hybrid_llm.audit import replay
from hybrid_llm.temporal import keyring_of, plugin_for
from tests.clock_workflow import ClockWorkflow
from tests.conftest import scripted
from tests.helpers import assert_replays_in_sandbox, ask


def test_the_worker_is_unsandboxed_unless_asked(settings):
    assert isinstance(plugin_for(settings).workflow_runner, UnsandboxedWorkflowRunner)
    on = settings.model_copy(update={"workflow_sandbox": True})
    assert isinstance(plugin_for(on).workflow_runner, SandboxedWorkflowRunner)


async def test_a_clock_reading_workflow_runs_but_its_replay_is_refused(client, settings):
    queue = f"clock-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[ClockWorkflow]):
        handle = await client.start_workflow(ClockWorkflow.run, id=f"clock-{uuid.uuid4().hex}", task_queue=queue)
        assert await handle.result() > 0  # the unsandboxed worker let it run
    outcome = await replay.verify([await handle.fetch_history()], workflows=[ClockWorkflow],
                                  keyring=keyring_of(client))
    assert outcome["failed"] == 1, outcome
    assert "time" in str(outcome["failures"][0]["error"]).lower()


async def test_a_request_and_its_children_replay_in_the_sandbox(client, settings, run_worker, scripted_pool):
    team = (scripted("generalist", ("general",), reply="Here:\n```python\nprint(1)\n```"),
            scripted("coder", ("code",), reply="def login(): ...\n```python\nprint(1)\n```"),
            scripted("reviewer", ("security",), reply='{"verdict": "approve", "findings": []}'))
    async with run_worker(scripted_pool(*team)):
        handle = await ask(client, settings, "Write a secure login API in Python that stores password hashes")
        result = await handle.result()
    assert result.plan == "collaboration"
    await assert_replays_in_sandbox(client, handle.id)
