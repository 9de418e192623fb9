"""Who is asking: the authenticated principal every entry point stamps on what it starts (durable contract).

A principal comes from an API key, an OIDC/JWT token, or the local operator credential that `hybrid-llm up`
writes to the state folder. It is never read from a request body: the entry point that authenticated the caller
puts it into the workflow input, and the payload codec seals it there.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


# The error type of a decision refused for who made it (the API answers 403).
FORBIDDEN = "Forbidden"


class AccessRole(StrEnum):
    USER = "user"  # start requests, read own results, upload and search
    APPROVER = "approver"  # decide other people's permission requests and sandbox reviews
    OPERATOR = "operator"  # lockdown, keys, models, policy
    AUDITOR = "auditor"  # read every result and audit


class Principal(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=200, description="key id, `oidc:<issuer>#<sub>`, `local-operator`, "
                                                              "or `system:<component>`")
    name: str = Field(min_length=1, max_length=200)
    roles: tuple[AccessRole, ...] = ()
    kind: Literal["key", "oidc", "local", "system"] = "key"
    models: tuple[str, ...] | None = Field(default=None, description="model allowlist; None = every model")

    def has(self, *roles: AccessRole) -> bool:
        """Whether the principal holds any of `roles`."""
        return any(r in self.roles for r in roles)

    @property
    def label(self) -> str:
        """How decisions name this principal in history and audit: `name (id)`."""
        return f"{self.name} ({self.id})"


def system_principal(component: str) -> Principal:
    """The platform itself (a worker's watcher, a trigger): never a person, never an approver."""
    return Principal(id=f"system:{component}", name=component, roles=(), kind="system")
