"""A model proposes code in the request flow: it runs only in a sandbox (a child workflow), reviewed by a person."""

from __future__ import annotations

import asyncio
import json

from domain.sandbox import ReviewDecision
from hybrid_llm import sandbox_client
from tests.conftest import scripted
from tests.helpers import ask
from tests.test_sandbox import root  # noqa: F401 - the fixture
from tests.helpers import TEST_APPROVER

PROPOSAL = "Run this:\n```python\nprint(6 * 7)\n```\n"


async def test_proposed_code_runs_in_a_reviewed_sandbox(client, settings, run_worker, scripted_pool,
                                                        root, tmp_path):  # noqa: F811
    policy = tmp_path / "policy.toml"
    policy.write_text('[[model.rules]]\noperations = ["sandbox"]\n')
    settings.permissions_file = policy
    async with run_worker(scripted_pool(scripted("proposer", reply=PROPOSAL))):
        handle = await ask(client, settings, "compute six times seven", run_code=True)
        view, wid = None, None
        for _ in range(300):  # the child runs the code, then waits for a person's review
            boxes = await sandbox_client.listing(client, settings, running_only=True)
            if boxes:
                wid = boxes[0]["workflow_id"]
                view = (await sandbox_client.show(client, wid)).get("view")
                if view and view["step"] == "reviewing":
                    break
            await asyncio.sleep(0.1)
        assert view is not None and view["step"] == "reviewing", view
        assert "6 * 7" in json.dumps(view)
        await sandbox_client.decide(client, wid, ReviewDecision(approve=True, by="pytest", principal=TEST_APPROVER))
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.sandbox is not None and result.sandbox.status == "approved"
    assert result.sandbox.exit_code == 0 and result.sandbox.stdout.strip() == "42"
    child = await client.get_workflow_handle(wid).describe()
    assert child.parent_id == handle.id


async def test_without_a_grant_the_proposal_is_refused(client, settings, run_worker, scripted_pool,
                                                       root):  # noqa: F811
    async with run_worker(scripted_pool(scripted("proposer", reply=PROPOSAL))):
        result = await (await ask(client, settings, "compute six times seven", run_code=True)).result()
    assert result.sandbox is not None and result.sandbox.status == "rejected" and result.sandbox.exit_code is None
