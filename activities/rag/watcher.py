"""The uploads/ watcher, run by the worker process: new, changed and deleted files are handed on for ingestion.

Debounced (watchfiles groups the changes of `debounce_ms`) and deduplicated (one entry per path per batch; the
handler versions by content hash, so an unchanged file or our own atomic rename does not start anything).
Hidden names (`.versions/`, `.tmp-*` files of atomic writes) are ignored. On start, every file present is
handed on once, so changes made while no worker ran are picked up.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("hybrid_llm.watcher")

Handler = Callable[[list[str]], Awaitable[object]]


class UploadWatcher:
    def __init__(self, root: Path, handler: Handler, debounce_ms: int = 400, initial_scan: bool = True) -> None:
        self.root = Path(root)
        self.uploads = self.root / "uploads"
        self.handler = handler
        self.debounce_ms = debounce_ms
        self.initial_scan = initial_scan

    def relevant(self, path: str) -> str | None:
        """uploads/<relative path> for a watched file, None for everything else."""
        try:
            rel = Path(path).relative_to(self.uploads)
        except ValueError:
            return None
        if not rel.parts or any(p.startswith(".") for p in rel.parts):
            return None
        return "/".join(("uploads", *rel.parts))

    def existing(self) -> list[str]:
        found = []
        for dirpath, dirnames, filenames in os.walk(self.uploads):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            found += [p for f in filenames if (p := self.relevant(os.path.join(dirpath, f)))]
        return sorted(found)

    async def _hand_on(self, paths: list[str]) -> None:
        if not paths:
            return
        try:
            await self.handler(paths)
        except Exception:  # noqa: BLE001 - the watcher must outlive one bad batch
            log.exception("handling changes to %s failed", ", ".join(paths[:5]))

    async def run(self, stop: asyncio.Event) -> None:
        from watchfiles import awatch

        self.uploads.mkdir(parents=True, exist_ok=True)
        ready = asyncio.Event()

        async def watch() -> None:
            async for changes in awatch(self.uploads, stop_event=stop, debounce=self.debounce_ms, step=50,
                                        watch_filter=lambda _, p: self.relevant(p) is not None,
                                        yield_on_timeout=True, rust_timeout=200):
                ready.set()
                await self._hand_on(sorted({p for _, raw in changes if (p := self.relevant(raw))}))

        task = asyncio.create_task(watch())
        log.info("watching %s", self.uploads)
        if self.initial_scan:
            await asyncio.wait([asyncio.ensure_future(ready.wait()), task], timeout=2,
                               return_when=asyncio.FIRST_COMPLETED)
            await self._hand_on(await asyncio.to_thread(self.existing))
        await task
