"""`hybrid-llm ask TEXT`: one request through a durable workflow, with progress while a model loads."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from pydantic import ValidationError
from temporalio.client import WorkflowFailureError

from hybrid_llm.cli.common import CLIError, console, describe_validation, err_console, remote, run, settings


def register(app: typer.Typer) -> None:
    @app.command()
    def ask(
        text: Annotated[str, typer.Argument(help="What to ask; '-' reads it from stdin.")],
        model: Annotated[str | None, typer.Option("--model", "-m", help="Force this model id (see `models`).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        max_tokens: Annotated[int, typer.Option(help="Most tokens to generate.")] = 256,
        temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.2,
        request_id: Annotated[str | None, typer.Option(help="Idempotency key: the same id finds the same workflow.")] = None,
        system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
        rag: Annotated[bool, typer.Option("--rag", help="Answer from your uploads' best passages, with citations.")]
        = False,
        rag_k: Annotated[int, typer.Option("--rag-k", help="How many passages (with --rag).")] = 4,
        run_code: Annotated[bool, typer.Option("--run", help="Run code the answer proposes in a sandbox, for you to "
                                                            "review (`hybrid-llm sandbox approve|reject`).")] = False,
        save: Annotated[str | None, typer.Option("--save", help="Have the model ask permission to save the answer "
                                                                 "under the platform root (e.g. downloads/answer.md).")] = None,
    ) -> None:
        """Ask a question; the router picks the model (local first) unless --model is given."""
        import sys

        from domain.requests import UserRequest
        from hybrid_llm.request_client import new_request_id

        prompt = sys.stdin.read() if text == "-" else text
        try:
            request = UserRequest(request_id=request_id or new_request_id(), prompt=prompt, model=model,
                                  max_tokens=max_tokens, temperature=temperature, system=system, save_as=save,
                                  run_code=run_code, rag=rag, rag_k=rag_k)
        except ValidationError as e:
            raise CLIError(f"invalid request: {describe_validation(e)}", code=2) from None
        cfg = settings()
        if remote(cfg):  # HYBRID_API_URL + HYBRID_API_KEY: through the API, as that key
            from hybrid_llm.cli import remote as api

            result = api.ask(cfg, request, show_progress=not as_json)
        else:
            from domain.principals import AccessRole
            from hybrid_llm.cli.common import local_operator

            # The credential `up` wrote: a revoked or missing one stops here; its principal is stamped on the request.
            principal = local_operator(cfg, AccessRole.USER)
            result = run(_ask(cfg, request, show_progress=not as_json, principal=principal))
        if as_json:
            print(json.dumps(result))
        else:
            console.print(result["answer"], highlight=False, markup=False)
            for c in result.get("citations") or []:
                err_console.print(f"[{c['n']}] {c['cite']} (chunk {c['chunk_id']}, score {c['score']})",
                                  highlight=False, markup=False)
            if result.get("sandbox"):
                box = result["sandbox"]
                err_console.print(f"sandbox {box['workflow_id']}: {box['status']} (exit {box.get('exit_code')})",
                                  highlight=False)
            if result.get("saved"):
                saved = result["saved"]
                verdict = saved["decision"]
                err_console.print(f"saved to {saved['wrote']}" if saved.get("wrote") else
                                  f"[yellow]not saved: {verdict['reason']}[/]", highlight=False)
            err_console.print(f"[dim]{result['model']} · {result['task_type']} · "
                              f"{result['usage']['completion_tokens']} tokens · {result['timings']['total_ms']:.0f} ms · "
                              f"workflow {result['workflow_id']}[/]", highlight=False)


async def _ask(cfg, request, show_progress: bool, principal=None) -> dict:
    from hybrid_llm.request_client import failure_message, start_request, wait_with_progress
    from hybrid_llm.temporal import connect, has_workers

    client = await connect(cfg)
    if not await has_workers(client, cfg.temporal_namespace, cfg.task_queue):
        err_console.print(f"[yellow]no worker is polling task queue {cfg.task_queue!r}: the request is queued and "
                          "runs when one starts (`hybrid-llm up`). Ctrl-C leaves it queued.[/]")
    handle = await start_request(client, cfg, request, principal=principal)
    status = err_console.status("waiting for a worker…") if show_progress else None

    def on_progress(p) -> None:
        if status is not None:
            label = {"routing": "routing", "loading": f"loading model {p.model}",
                     "generating": f"generating with {p.model}"}.get(p.stage, p.stage)
            status.update(label + "…")

    try:
        if status is not None:
            status.start()
        result = await wait_with_progress(handle, on_progress)
    except WorkflowFailureError as e:
        kind, message = failure_message(e)
        raise CLIError(f"{kind}: {message} (workflow {handle.id})") from None
    finally:
        if status is not None:
            status.stop()
    return {"workflow_id": handle.id, **result.model_dump(mode="json")}
