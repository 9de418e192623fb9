"""Resource exhaustion: when the machine or the queues are past their limits, the platform locks down."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ResourceLimits(BaseModel):
    memory_percent: float = Field(default=95.0, gt=0, le=100, description="System memory in use.")
    backlog: int = Field(default=10_000, ge=1, description="Tasks waiting on the task queue.")


class ResourceSample(BaseModel):
    memory_percent: float
    backlog: int | None = None  # None when the server does not report it


def exhaustion(sample: ResourceSample, limits: ResourceLimits) -> str | None:
    """Why the resources count as exhausted, or None."""
    problems = []
    if sample.memory_percent >= limits.memory_percent:
        problems.append(f"memory {sample.memory_percent:.0f}% >= {limits.memory_percent:.0f}%")
    if sample.backlog is not None and sample.backlog >= limits.backlog:
        problems.append(f"task queue backlog {sample.backlog} >= {limits.backlog}")
    return "resource exhaustion: " + ", ".join(problems) if problems else None
