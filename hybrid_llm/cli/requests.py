"""`hybrid-llm requests status ID`: a request's state (running with progress, its result, or its error)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from hybrid_llm.cli.common import CLIError, console, remote, run, settings


async def _local_status(cfg, request_id: str) -> dict:
    from temporalio.client import WorkflowFailureError
    from temporalio.service import RPCError, RPCStatusCode

    from domain.requests import RequestResult, workflow_id_for
    from hybrid_llm.request_client import current_progress, failure_message
    from hybrid_llm.temporal import connect

    client = await connect(cfg)
    workflow_id = workflow_id_for(request_id)
    handle = client.get_workflow_handle(workflow_id, result_type=RequestResult)
    try:
        described = await handle.describe()
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            raise CLIError(f"no request with id {request_id!r}", code=2) from None
        raise
    status = described.status.name.lower() if described.status else "running"
    status = "running" if status == "continued_as_new" else status
    out: dict = {"request_id": request_id, "workflow_id": workflow_id, "status": status, "result": None,
                 "error": None, "progress": None}
    if status == "running":
        progress = await current_progress(handle)
        out["progress"] = {"stage": progress.stage, "model": progress.model} if progress else None
    elif status == "completed":
        out["result"] = (await handle.result()).model_dump(mode="json")
    else:
        try:
            await handle.result()
        except WorkflowFailureError as e:
            kind, message = failure_message(e)
            out["error"] = {"type": kind, "message": message}
    return out


def register(app: typer.Typer) -> None:
    requests = typer.Typer(no_args_is_help=True, help="Requests started with `ask` or the API.")
    app.add_typer(requests, name="requests")

    @requests.command()
    def status(request_id: Annotated[str, typer.Argument(help="The request id (`ask --json` prints it).")],
               as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
        """running (with its stage), completed (with the answer) or failed (with the error)."""
        from domain.requests import REQUEST_ID_PATTERN
        import re

        if not re.fullmatch(REQUEST_ID_PATTERN, request_id):
            raise CLIError(f"invalid request id {request_id!r}", code=2)
        cfg = settings()
        if remote(cfg):
            from hybrid_llm.cli import remote as api

            out = api.request_status(cfg, request_id)
        else:
            out = run(_local_status(cfg, request_id))
        if as_json:
            print(json.dumps(out))
            return
        line = f"{out['workflow_id']}: {out['status']}"
        if out.get("progress"):
            line += f" ({out['progress']['stage']}" + (f", {out['progress']['model']})" if out['progress'].get(
                "model") else ")")
        console.print(line, highlight=False)
        if out.get("result"):
            console.print(out["result"]["answer"], highlight=False, markup=False)
        if out.get("error"):
            console.print(f"{out['error']['type']}: {out['error']['message']}", highlight=False, markup=False)
