"""`hybrid-llm up | down | status`: the embedded stack (Temporal dev server, PostgreSQL + pgvector, worker)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from hybrid_llm.cli.common import console, settings

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the stack status as one JSON object.")]
STATE_STYLE = {"running": "green", "external": "cyan", "stopped": "yellow", "unreachable": "red"}


def register(app: typer.Typer) -> None:
    @app.command()
    def up(as_json: JsonFlag = False) -> None:
        """Start the embedded stack and a worker in the background (reuses what already runs)."""
        from hybrid_llm.stack import up as stack_up

        cfg = settings()
        report = stack_up(cfg)
        _show(report, as_json, "up")
        if not as_json:
            if report.lockdown_secret:
                console.print("[bold]Lockdown release secret (shown once, stored nowhere; keep it safe):[/] "
                              f"{report.lockdown_secret}", highlight=False)
            _remind_secret(cfg)

    @app.command()
    def down(as_json: JsonFlag = False) -> None:
        """Stop the worker, Temporal and PostgreSQL started by `up` (external services are left alone)."""
        from hybrid_llm.stack import down as stack_down

        _show(stack_down(settings()), as_json, "down")

    @app.command()
    def status(as_json: JsonFlag = False) -> None:
        """Show each part of the stack and the Temporal UI address, without starting anything."""
        from hybrid_llm.stack import status as stack_status

        _show(stack_status(settings()), as_json, "status")


def _remind_secret(cfg) -> None:
    """A lockdown cannot be released without a secret: say so until one is set."""
    from hybrid_llm.lockdown_client import store

    try:
        missing = not store(cfg).has_secret()
    except Exception:  # noqa: BLE001 - a reminder must never fail `up`
        return
    if missing:
        console.print("[yellow]No lockdown release secret is set: run `hybrid-llm lockdown set-secret` "
                      "(a lockdown cannot be released without it).[/]")


def _show(report, as_json: bool, command: str) -> None:
    if as_json:
        print(report.model_dump_json())
        return
    table = Table(title=f"Hybrid LLM stack ({report.state_dir})")
    for col in ("part", "state", "pid", "address", "detail"):
        table.add_column(col, overflow="fold")
    for part in report.parts.values():
        style = STATE_STYLE.get(part.state, "")
        table.add_row(part.name, f"[{style}]{part.state}[/]", str(part.pid or ""), part.address or "", part.detail)
    console.print(table)
    if report.temporal_ui and command != "down":
        running = report.parts["temporal"].state == "running"
        console.print(f"Temporal UI: {report.temporal_ui}" + ("" if running else " (not running)"), highlight=False)
