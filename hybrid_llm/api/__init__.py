"""The HTTP API: `create_app(settings)` builds it; `hybrid-llm serve` runs it with uvicorn."""

from hybrid_llm.api.app import create_app

__all__ = ["create_app"]
