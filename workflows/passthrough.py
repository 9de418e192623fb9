"""How workflow code runs in the worker: the SDK's sandbox (with our pure modules passed through), or unsandboxed.

The sandbox re-imports a workflow's module for every run and forwards every activation and every payload's
serialization context through `exec` of generated code: measured on bench/pipeline.py, about 40% of a short
request's latency and of the worker's CPU. The worker therefore runs workflows UNSANDBOXED by default
(HYBRID_WORKFLOW_SANDBOX=false), and determinism is proved where it is decided, by replay: `audit verify` and the
tests replay histories under the SDK's full sandbox with its default restrictions (nothing passed through), which
refuses I/O, clocks, randomness and threads in workflow code (hybrid_llm/audit/replay.py; tests/helpers.py replays
every request the tests wait for, with its child workflows). HYBRID_WORKFLOW_SANDBOX=true turns the sandbox on in
the worker too.

With the sandbox on, domain/ (pure contracts and rules) and the workflows' helper modules (typed activity stubs,
the model-call step, the lockdown-aware base, blob references, search attributes) are passed through: the SDK would
otherwise re-execute them per run.
"""

from __future__ import annotations

from temporalio.worker import UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSTHROUGH_MODULES = ("domain", "pydantic", "pydantic_core", "annotated_types", "workflows.activity_stubs",
                       "workflows.model_call", "workflows.blob_refs", "workflows.pausable",
                       "workflows.search_attributes", "workflows.request_steps", "workflows.user_input")


def workflow_runner(sandboxed: bool = False) -> WorkflowRunner:
    if not sandboxed:
        return UnsandboxedWorkflowRunner()
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES))
