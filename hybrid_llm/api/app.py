"""`create_app(settings)`: the HTTP face of the platform. Light: no torch, litellm or llama_cpp here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from temporalio.client import Client

from hybrid_llm.api import errors
from hybrid_llm.api.body_limit import BodyLimit
from hybrid_llm.api.gate import TemporalGate
from hybrid_llm.api.keys_routes import router as keys_router
from hybrid_llm.api.rag_routes import router as rag_router
from hybrid_llm.api.routes import public as public_router
from hybrid_llm.api.routes import router
from hybrid_llm.api.security_routes import router as security_router
from hybrid_llm.api.sandbox_routes import router as sandbox_router
from hybrid_llm.api.codec_routes import router as codec_router
from hybrid_llm.settings import Settings


def create_app(settings: Settings, client: Client | None = None) -> FastAPI:
    """Build the app. `client` skips connecting (tests); otherwise the lifespan connects, and when
    Temporal is down the app still starts: endpoints answer 503 and retry the connection per request."""
    gate = TemporalGate(settings, client)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await gate.try_connect()
        yield
        keys = getattr(app.state, "keys", None)  # the key store's engine, built on the first authenticated call
        if keys is not None:
            keys.engine.dispose()

    app = FastAPI(title="Hybrid LLM Platform", version="0.1.0", lifespan=lifespan,
                  description="Every request is a durable Temporal workflow: start one, then poll its status.")
    app.state.settings = settings
    app.state.gate = gate
    app.include_router(public_router)
    app.include_router(router)
    app.include_router(security_router)
    app.include_router(sandbox_router)
    app.include_router(rag_router)
    app.include_router(keys_router)
    app.include_router(codec_router)
    errors.install(app)
    # The Temporal Web UI calls the codec endpoint from the browser: allow its origin (with credentials: the
    # codec session cookie), and only its origin.
    ui_origins = [o for o in (settings.temporal_ui_url, *settings.ui_origins) if o]
    if ui_origins:
        app.add_middleware(CORSMiddleware, allow_origins=ui_origins, allow_credentials=True,
                           allow_methods=["POST", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type", "X-Namespace"])
    # Uploads: base64 or multipart overhead around the file; the route checks the file itself.
    app.add_middleware(BodyLimit, limit_for=lambda path: 2 * settings.max_upload_bytes + 65536
                       if path == "/v1/uploads" else settings.max_body_bytes)
    return app
