"""Activity inputs and outputs that used to live beside their activities (durable contracts: add optional fields).

Every activity takes one input model defined in domain/, so workflows can call it by name through a typed stub
(workflows/activity_stubs.py) without importing the activity's module.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from domain.permissions import PermissionRequest


class StatusRequest(BaseModel):
    """The input of read-only status activities (`lockdown.status`, `sandbox.support`): nothing yet, room to grow."""


class WriteRequest(PermissionRequest):
    """`files.write`: an allowed write to perform (the same request that was checked, plus its content)."""

    content: str = ""
    approval_id: str | None = Field(default=None, description="a person's approval of exactly this write, when "
                                                              "the policy asks for one")


class DiscardInput(BaseModel):
    """`rag.discard`: a failed ingestion's version to drop, and why."""

    version_id: int
    error: str


class SandboxSupport(BaseModel):
    """`sandbox.support`: which backends this worker can run."""

    namespace: bool = True
    microvm: bool = False
    microvm_reason: str | None = None
    cgroups: bool = False
