"""What `hybrid-llm status` reports: one entry per part of the stack."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

PartState = Literal["running", "stopped", "external", "unreachable"]


class PartStatus(BaseModel):
    name: str
    state: PartState
    pid: int | None = None
    address: str | None = None
    detail: str = ""


class StackStatus(BaseModel):
    parts: dict[str, PartStatus]
    temporal_ui: str | None = None
    state_dir: str
    lockdown_secret: str | None = Field(default=None, description="the release secret `up` just made (when none "
                                        "was set): shown this once, stored only as a public key")

    @property
    def all_up(self) -> bool:
        return all(p.state in ("running", "external") for p in self.parts.values())
