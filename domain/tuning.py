"""Activity timing chosen by the entry point from settings and recorded in history with each request."""

from pydantic import BaseModel, Field


class Tuning(BaseModel):
    llm_heartbeat_timeout_s: float = Field(default=2.0, gt=0)
    llm_start_to_close_s: float = Field(default=600.0, gt=0)
    llm_max_attempts: int = Field(default=3, ge=1)
    retry_initial_interval_s: float = Field(default=0.2, gt=0)
    router_embeddings: bool = False
    lockdown_poll_s: float = Field(default=30.0, gt=0, description="How often a paused workflow re-reads the "
                                   "lockdown state in case it missed the release signal.")
    permission_failure_threshold: int = Field(default=5, ge=1)
    permission_failure_window_s: float = Field(default=600.0, gt=0)
    approval_timeout_s: float = Field(default=86400.0, gt=0)
    guard_semantic: bool = False
    blob_threshold_bytes: int = Field(default=4096, ge=0, description="Prompts larger than this go to "
                                      "LLM activities by hash (blob store), not inline in history.")
    delegation_max_depth: int = Field(default=3, ge=1, le=10)
    delegation_max_rounds: int = Field(default=2, ge=1, le=10)
