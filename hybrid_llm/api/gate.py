"""The API's one Temporal client, connected lazily: the app starts without Temporal and retries per request."""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client

from hybrid_llm.settings import Settings
from hybrid_llm.temporal import TemporalUnavailable, connect

log = logging.getLogger("hybrid_llm.api")


class TemporalGate:
    def __init__(self, settings: Settings, client: Client | None = None, connect_timeout_s: float = 3.0) -> None:
        self._settings = settings
        self._client = client
        self._timeout_s = connect_timeout_s
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def client(self) -> Client:
        """The client, connecting first if needed; raises TemporalUnavailable with a hint for the user."""
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                self._client = await connect(self._settings, timeout_s=self._timeout_s)
                log.info("connected to Temporal at %s", self._settings.temporal_target)
            return self._client

    async def try_connect(self) -> None:
        try:
            await self.client()
        except TemporalUnavailable as e:
            log.warning("%s (the API will retry on the next request)", e)

    def unavailable(self, cause: object) -> TemporalUnavailable:
        """The error for a call that failed because the server went away after we had connected."""
        hint = ("run `hybrid-llm up` to start the embedded stack" if self._settings.embedded_temporal
                else "check HYBRID_TEMPORAL_ADDRESS and that the server is running")
        return TemporalUnavailable(f"cannot reach Temporal at {self._settings.temporal_target}: {cause}; {hint}")
