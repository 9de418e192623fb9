"""Serve the real app over HTTP for the OpenAI client and the browser (streaming needs a real socket)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from hybrid_llm.api import create_app
from hybrid_llm.settings import Settings
from hybrid_llm.stack.procs import free_port


@asynccontextmanager
async def serve_api(settings: Settings) -> AsyncIterator[str]:
    """The API on a free port in this event loop; its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the API server stopped while starting"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
