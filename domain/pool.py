"""What the LLM pool reports about each model; the router decides on this snapshot."""

from __future__ import annotations

from pydantic import BaseModel, Field

from domain.registry import ModelSpec


class ModelStatus(BaseModel):
    spec: ModelSpec
    loaded: bool = False
    healthy: bool = True
    health_detail: str | None = None
    memory_bytes: int = 0
    in_flight: int = 0
    cooling_down: bool = False
    cooldown_remaining_s: float = 0.0
    failures: int = 0
    last_error: str | None = None
    task_queue: str | None = Field(default=None, description="the worker queue whose pool this is (several "
                                   "workers: one entry per worker and model); None: any worker")
    ms_per_token: float | None = Field(default=None, description="this worker's recent generation time per output "
                                       "token of the model (None: not measured yet, or another worker's pool)")

    @property
    def available(self) -> bool:
        return self.spec.enabled and self.healthy and not self.cooling_down

    def unavailable_reason(self) -> str | None:
        if not self.spec.enabled:
            return self.spec.disabled_reason or "disabled"
        if not self.healthy:
            return self.health_detail or "unhealthy"
        if self.cooling_down:
            return f"cooling down for {self.cooldown_remaining_s:.0f}s after: {self.last_error}"
        return None


class PoolSnapshot(BaseModel):
    models: list[ModelStatus] = Field(default_factory=list)
    here: str | None = Field(default=None, description="the pool queue of the worker that took this snapshot (a local "
                             "activity: the worker running the workflow's task); a call placed there can start eagerly")

    def get(self, model_id: str, task_queue: str | None = None) -> ModelStatus | None:
        """The model's entry on that worker's queue; without one, its entry on a worker that has it loaded."""
        entries = [m for m in self.models if m.spec.id == model_id]
        if task_queue is not None:
            return next((m for m in entries if m.task_queue == task_queue), None)
        return next((m for m in entries if m.loaded), entries[0] if entries else None)

    def ids(self) -> list[str]:
        return list(dict.fromkeys(m.spec.id for m in self.models))

    def without_queue(self, task_queue: str) -> "PoolSnapshot":
        """The pool without one worker's entries (a worker that stopped answering)."""
        return PoolSnapshot(models=[m for m in self.models if m.task_queue != task_queue],
                            here=None if self.here == task_queue else self.here)
