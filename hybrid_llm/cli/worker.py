"""`hybrid-llm worker`: run a worker in the foreground."""

from __future__ import annotations

import typer

from hybrid_llm.cli.common import settings


def register(app: typer.Typer) -> None:
    @app.command()
    def worker() -> None:
        """Run a worker in the foreground (Ctrl-C stops it gracefully)."""
        import asyncio
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        from hybrid_llm.observability import configure_logging
        from worker import run_worker

        cfg = settings()
        configure_logging(cfg)  # text or JSON lines (log_format), workflow ids on every workflow/activity line
        asyncio.run(run_worker(cfg))
