"""What a request needs before routing, fetched in one local activity: the pool and the input's verdict."""

from pydantic import BaseModel

from domain.guardrails import Verdict
from domain.pool import PoolSnapshot


class PreflightInput(BaseModel):
    prompt: str
    semantic: bool = False


class Preflight(BaseModel):
    pool: PoolSnapshot
    verdict: Verdict
