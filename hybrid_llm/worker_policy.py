"""The worker's policy (domain/tuning.py), built from the WORKER's settings: workflows read it in each request's
preflight, so it is recorded in history with its version. Clients never send it."""

from __future__ import annotations

from domain.permissions import PermissionPolicy
from domain.tuning import Tuning, policy_version
from hybrid_llm.settings import Settings


def worker_policy(settings: Settings, permissions: PermissionPolicy) -> tuple[Tuning, str]:
    tuning = Tuning(llm_heartbeat_timeout_s=settings.llm_heartbeat_timeout_s,
                    llm_start_to_close_s=settings.llm_start_to_close_s,
                    llm_max_attempts=settings.llm_max_attempts, router_embeddings=settings.router_embeddings,
                    permission_failure_threshold=settings.permission_failure_threshold,
                    permission_failure_window_s=settings.permission_failure_window_s,
                    approval_timeout_s=settings.approval_timeout_s,
                    sandbox_review_timeout_s=settings.sandbox_review_timeout_s,
                    approvals_four_eyes=settings.approvals_four_eyes,
                    guard_semantic=settings.guard_semantic, guard_judge_model=settings.guard_model,
                    blob_threshold_bytes=settings.blob_threshold_bytes,
                    delegation_max_depth=settings.delegation_max_depth,
                    delegation_max_rounds=settings.delegation_max_rounds, max_tokens_cap=settings.max_tokens_cap,
                    pool_schedule_to_start_s=settings.pool_schedule_to_start_s,
                    local_call_max_ms=settings.local_call_max_ms,
                    workflow_task_timeout_s=settings.workflow_task_timeout_s)
    return tuning, policy_version(tuning, permissions.model_dump_json(), settings.guard_model or "")
