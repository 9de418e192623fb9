"""`hybrid-llm serve`: the HTTP API (FastAPI under uvicorn)."""

from __future__ import annotations

from typing import Annotated

import typer

from hybrid_llm.cli.common import console, settings


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default: settings.api_host).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535,
                                             help="Port to listen on (default: settings.api_port).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the HTTP API: POST /v1/requests, GET /v1/requests/{id}, GET /v1/pool; docs at /docs."""
    import uvicorn

    from hybrid_llm.api import create_app

    cfg = settings()
    host = host or cfg.api_host
    port = port or cfg.api_port
    console.print(f"API on http://{host}:{port} (docs at /docs), Temporal at {cfg.temporal_target}", highlight=False)
    uvicorn.run(create_app(cfg), host=host, port=port, log_level=log_level, proxy_headers=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
