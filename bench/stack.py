"""The real parts a benchmark runs on, started in a temp folder: a Temporal dev server and PostgreSQL + pgvector."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from hybrid_llm.settings import Settings
from hybrid_llm.stack import migrate
from hybrid_llm.stack.postgres import EmbeddedPostgres
from hybrid_llm.stack.procs import free_port
from hybrid_llm.stack.temporal_server import TemporalServer


@dataclass
class BenchStack:
    workdir: Path
    settings: Settings


@asynccontextmanager
async def bench_stack(name: str, **settings: object) -> AsyncIterator[BenchStack]:
    """Start both servers (headless Temporal, migrated PostgreSQL), yield settings pointing at them, stop both."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-", dir="/tmp") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)  # PostgreSQL runs as another user when we are root
        server = TemporalServer(workdir / "temporal", free_port(), free_port(), headless=True)
        postgres = EmbeddedPostgres(workdir / "pg", free_port())
        server.start()
        try:
            postgres.start()
            migrate.upgrade(postgres.url)
            yield BenchStack(workdir, Settings(state_dir=workdir / "state", temporal_address=server.address,
                                               database_url=postgres.url, task_queue=f"bench-{uuid.uuid4().hex[:8]}",
                                               **settings))
        finally:
            server.stop()
            postgres.stop()
