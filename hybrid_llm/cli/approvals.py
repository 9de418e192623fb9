"""`hybrid-llm approvals list | approve | deny`: decide the permission requests that wait for a person."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from hybrid_llm.cli import remote as api
from domain.principals import AccessRole
from hybrid_llm.cli.common import CLIError, console, local_operator, remote, run, settings


Note = Annotated[str, typer.Option(help="Why (recorded in history).")]


def register(app: typer.Typer) -> None:
    approvals = typer.Typer(no_args_is_help=True, help="Permission requests waiting for a person.")
    app.add_typer(approvals, name="approvals")

    @approvals.command("list")
    def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
        """Requests waiting for a decision: who asks, for what, and why."""
        from hybrid_llm import permission_client
        from hybrid_llm.temporal import connect

        async def go():
            cfg = settings()
            return await permission_client.pending(await connect(cfg), cfg)

        items = api.pending_approvals(settings()) if remote(settings()) else run(go())
        if as_json:
            print(json.dumps([i.model_dump(mode="json") for i in items]))
            return
        table = Table(title="Waiting for approval")
        for col in ("workflow id", "actor", "model", "operation", "target", "explanation"):
            table.add_column(col, overflow="fold")
        for i in items:
            r = i.request
            table.add_row(i.workflow_id, r.actor.value, r.model_id or "", r.operation.value,
                          r.path or r.host or r.target or "", r.explanation)
        console.print(table if items else "nothing is waiting for approval")

    def _decide(workflow_id: str, approve: bool, note: str) -> None:
        from domain.approvals import ApprovalVerdict
        from hybrid_llm import permission_client
        from hybrid_llm.temporal import connect

        async def go():
            cfg = settings()
            me = local_operator(cfg, AccessRole.APPROVER)
            verdict = ApprovalVerdict(approve=approve, by=me.label, note=note, principal=me)
            try:
                return await permission_client.decide(await connect(cfg), workflow_id, verdict)
            except permission_client.ApprovalError as e:
                raise CLIError(str(e)) from None

        cfg = settings()
        outcome = api.decide_approval(cfg, workflow_id, approve, note) if remote(cfg) else run(go())
        console.print(f"{workflow_id}: {outcome}")

    @approvals.command()
    def approve(workflow_id: str, note: Note = "") -> None:
        """Allow a waiting request."""
        _decide(workflow_id, True, note)

    @approvals.command()
    def deny(workflow_id: str, note: Note = "") -> None:
        """Refuse a waiting request (it counts as a failed permission request)."""
        _decide(workflow_id, False, note)
