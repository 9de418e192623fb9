"""Modules the workflow sandbox passes through instead of re-importing them for every workflow run.

They are deterministic and hold no per-run state: domain/ (pure contracts and rules) and the workflows' helper
modules (typed activity stubs, the model-call step, the lockdown-aware base, blob references, search attributes).
Passing them through makes a run's start cheap (the SDK would otherwise re-execute them per run); the workflow
modules themselves are still loaded per run, inside the sandbox.
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSTHROUGH_MODULES = ("domain", "pydantic", "pydantic_core", "annotated_types", "workflows.activity_stubs",
                       "workflows.model_call", "workflows.blob_refs", "workflows.pausable",
                       "workflows.search_attributes", "workflows.request_steps", "workflows.user_input")


def workflow_runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES))
