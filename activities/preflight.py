"""`request.preflight`: everything a request needs before routing, in one LOCAL activity (no dispatch of its own):
the user's prompt and system text scanned, the pool that will serve it, and the worker's policy with its version
(recorded in the run's history as this activity's result)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from temporalio import activity

from activities.scanning import Scanner
from domain.pool import PoolSnapshot
from domain.preflight import Preflight, PreflightInput
from domain.scanning import ScanRequest
from domain.tuning import Tuning


class PreflightActivities:
    def __init__(self, snapshot: Callable[[], PoolSnapshot], scanner: Scanner, policy: Tuning,
                 policy_version: str) -> None:
        self.snapshot = snapshot
        self.scanner = scanner
        self.policy = policy
        self.policy_version = policy_version
        # The pool is read (PostgreSQL) and the system text scanned while the prompt is scanned (MiniLM).
        self._reads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="preflight-pool")

    @activity.defn(name="request.preflight")
    def preflight(self, inp: PreflightInput) -> Preflight:
        pool = self._reads.submit(self.snapshot)
        semantic = self.policy.guard_semantic  # the worker's setting, whatever the caller sent
        # The system text is scanned on another thread while the prompt is (ONNX Runtime releases the GIL).
        system = self._reads.submit(self.scanner.scan, ScanRequest(
            text=inp.system, kind="prompt", source="user", semantic=semantic)) if inp.system else None
        verdict = self.scanner.scan(ScanRequest(text=inp.prompt, kind="prompt", source="user", semantic=semantic))
        return Preflight(pool=pool.result(), verdict=verdict, system_verdict=system.result() if system else None,
                         policy=self.policy, policy_version=self.policy_version, memo_with_routing=True)
