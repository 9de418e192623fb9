"""`request.preflight`: the input scan and the pool snapshot in one local activity (one dispatch, not two)."""

from __future__ import annotations

from temporalio import activity

from activities.llm_pool import LLMPool
from activities.scanning import Scanner
from domain.preflight import Preflight, PreflightInput
from domain.scanning import ScanRequest


class PreflightActivities:
    def __init__(self, pool: LLMPool, scanner: Scanner) -> None:
        self.pool = pool
        self.scanner = scanner

    @activity.defn(name="request.preflight")
    def preflight(self, inp: PreflightInput) -> Preflight:
        verdict = self.scanner.scan(ScanRequest(text=inp.prompt, kind="prompt", source="user", semantic=inp.semantic))
        return Preflight(pool=self.pool.snapshot(), verdict=verdict)
