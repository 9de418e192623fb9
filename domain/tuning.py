"""The worker's policy: activity timing and security settings, read from the WORKER's settings.

The client never chooses these (it chooses per-request options within the caps below, in UserRequest). Each
request reads the policy in its preflight local activity, so the policy and its version (a hash of the
effective policy) are recorded in the run's history at no extra dispatch.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, Field


class Tuning(BaseModel):
    llm_heartbeat_timeout_s: float = Field(default=1.5, gt=0)
    llm_start_to_close_s: float = Field(default=600.0, gt=0)
    llm_max_attempts: int = Field(default=3, ge=1)
    retry_initial_interval_s: float = Field(default=0.1, gt=0)
    router_embeddings: bool = False
    lockdown_poll_s: float = Field(default=30.0, gt=0, description="How often a paused workflow re-reads the "
                                   "lockdown state in case it missed the release signal.")
    permission_failure_threshold: int = Field(default=5, ge=1)
    permission_failure_window_s: float = Field(default=600.0, gt=0)
    approval_timeout_s: float = Field(default=86400.0, gt=0)
    sandbox_review_timeout_s: float = Field(default=86400.0, gt=0)
    approvals_four_eyes: bool = Field(default=True, description="a reviewer or approver must not be the requester")
    guard_semantic: bool = False
    guard_judge_model: str | None = Field(default=None, description="The registry model asked for a second opinion "
                                          "where the semantic layer scans (HYBRID_GUARD_MODEL); None: no judge.")
    blob_threshold_bytes: int = Field(default=4096, ge=0, description="Texts larger than this go by "
                                      "hash (blob store), not inline in history: prompts to LLM activities, the "
                                      "texts of delegation hops, the texts their scans read.")
    delegation_max_depth: int = Field(default=3, ge=1, le=10)
    delegation_max_rounds: int = Field(default=2, ge=1, le=10)
    max_tokens_cap: int = Field(default=8192, ge=1, description="A request asking for more is refused.")
    pool_schedule_to_start_s: float = Field(default=5.0, gt=0, description="How long a call bound to one "
                                            "worker's pool may wait for that worker before it is routed again.")
    # The defaults below are what histories recorded before these settings existed did (they replay that way).
    local_call_max_ms: float = Field(default=0.0, ge=0, description="A model call that the pool of the worker "
                                     "running the workflow serves, expected to take at most this long (the model's "
                                     "measured time per token there x max_tokens), runs as a LOCAL activity inside "
                                     "the workflow task: no dispatch, no second task. Streamed calls never do. 0: "
                                     "never.")
    workflow_task_timeout_s: float = Field(default=10.0, gt=0, le=120, description="The workflow task timeout of "
                                           "the child workflows that call models (a dead worker's local call is "
                                           "noticed when its task times out).")


def policy_version(tuning: Tuning, *parts: str) -> str:
    """A short hash of the effective policy (these settings and, e.g., the permission policy's JSON)."""
    canonical = json.dumps([tuning.model_dump(mode="json"), *parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
