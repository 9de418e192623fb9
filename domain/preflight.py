"""What a request needs before routing, fetched in one local activity: the verdicts on what the user sent, the
pool that will serve it, and the worker's policy (recorded in history with its version)."""

from pydantic import BaseModel, Field

from domain.guardrails import Verdict
from domain.pool import PoolSnapshot
from domain.tuning import Tuning


class PreflightInput(BaseModel):
    prompt: str
    system: str | None = None
    semantic: bool = False  # ignored: the worker's policy decides (kept so recorded inputs still parse)


class Preflight(BaseModel):
    pool: PoolSnapshot
    verdict: Verdict
    system_verdict: Verdict | None = None
    policy: Tuning = Tuning()
    policy_version: str = Field(default="", description="hash of the worker's effective policy")
    # Set by workers that expect the workflow to write the policy version into its memo together with its first
    # routing record (one memo upsert less per request); False in histories recorded before, which wrote it alone.
    memo_with_routing: bool = False
