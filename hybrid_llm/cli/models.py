"""`hybrid-llm models`: the worker's LLM pool: what is registered, loaded, healthy and busy."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from hybrid_llm.cli.common import CLIError, console, run, settings


def register(app: typer.Typer) -> None:
    @app.command()
    def models(
        load: Annotated[str | None, typer.Option(help="Load this model into memory now.")] = None,
        unload: Annotated[str | None, typer.Option(help="Unload this model.")] = None,
        check: Annotated[str | None, typer.Option(help="Health-check this model (loads it, generates a token).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the pool as JSON.")] = False,
    ) -> None:
        """Show the pool: each model's capabilities, where it runs, and whether it is loaded, healthy and busy."""
        chosen = [(a, m) for a, m in (("load", load), ("unload", unload), ("health", check)) if m]
        if len(chosen) > 1:
            raise CLIError("give at most one of --load, --unload, --check", code=2)
        action, model_id = chosen[0] if chosen else ("status", None)
        snapshot = run(_pool(settings(), action, model_id))
        if as_json:
            print(json.dumps(snapshot.model_dump(mode="json")))
            return
        table = Table(title="LLM pool")
        for col in ("model", "provider", "where", "capabilities", "loaded", "memory", "busy"):
            table.add_column(col, no_wrap=True)
        table.add_column("health", ratio=1)
        for m in snapshot.models:
            why = m.unavailable_reason()
            table.add_row(m.spec.id, m.spec.provider, "local" if m.spec.local else "cloud",
                          ",".join(c.value for c in m.spec.capabilities), "yes" if m.loaded else "no",
                          f"{m.memory_bytes / 2**20:.0f} MiB", f"{m.in_flight}/{m.spec.max_concurrency}",
                          "ok" if why is None else f"[yellow]{escape(why)}[/]")
        console.print(table)


async def _pool(cfg, action: str, model_id: str | None):
    from datetime import timedelta

    from temporalio.client import WorkflowFailureError

    from domain.llm import PoolCommand
    from domain.pool import PoolSnapshot
    from hybrid_llm.request_client import failure_message
    from hybrid_llm.temporal import connect, has_workers
    from workflows.pool import PoolWorkflow

    client = await connect(cfg)
    if not await has_workers(client, cfg.temporal_namespace, cfg.task_queue):
        raise CLIError(f"no worker is polling task queue {cfg.task_queue!r}: run `hybrid-llm up` "
                       "(or `hybrid-llm worker`)", code=3)
    try:
        return await client.execute_workflow(
            PoolWorkflow.run, PoolCommand(action=action, model_id=model_id), id=f"pool-{action}-{uuid.uuid4().hex[:8]}",
            task_queue=cfg.task_queue, result_type=PoolSnapshot, execution_timeout=timedelta(minutes=15))
    except WorkflowFailureError as e:
        kind, message = failure_message(e)
        raise CLIError(f"{kind}: {message}") from None
