"""`hybrid-llm audit show | verify | export`: a request's timeline from its history, and replay verification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hybrid_llm.cli.common import CLIError, console, run, settings

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _blob_store(cfg):
    from activities.blobs import BlobStore
    from activities.db import make_engine

    return BlobStore(make_engine(cfg.effective_database_url, pool_size=2))


def _print_timeline(t: dict, indent: str = "") -> None:
    head = (f"{indent}[bold]{t.get('workflow_type')}[/] {t.get('workflow_id')}  {t.get('status')}  "
            f"{t.get('duration_ms', 0):.0f} ms, {t.get('events')} events")
    console.print(head, highlight=False)
    who = t.get("asked_by")
    if who:
        console.print(f"{indent}  asked by {who['name']} ({who['id']}; roles: {', '.join(who.get('roles') or [])})",
                      highlight=False, markup=False)
    for e in t.get("entries", []):
        kind = e["kind"]
        rest = {k: v for k, v in e.items() if k not in ("t_ms", "event_id", "kind") and v not in (None, [], {})}
        if kind == "model_call":
            text = (f"{rest.get('model')}  prompt {str(rest.get('prompt_sha256'))[:12]}  output "
                    f"{str(rest.get('output_sha256'))[:12]}  tokens {rest.get('prompt_tokens')}+"
                    f"{rest.get('completion_tokens')}  {rest.get('duration_ms')} ms")
            if "messages" in rest:
                text += "\n" + json.dumps({"messages": rest["messages"], "output": rest.get("output")}, indent=2,
                                          ensure_ascii=False)
        elif kind == "routing":
            text = f"chose {rest.get('chosen')} ({rest.get('task_type')}): " + "; ".join(rest.get("reasons") or [])
        else:
            text = json.dumps(rest, ensure_ascii=False, default=str)
        console.print(f"{indent}  {e['t_ms']:>9.1f} ms  #{e['event_id']:<4} {kind:<22} {text}", highlight=False,
                      markup=False, soft_wrap=True)
    for child in t.get("children", []):
        if "entries" in child:
            _print_timeline(child, indent + "    ")


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False, default=str))
        return
    console.print(f"replayed {result['replayed']}, failed {result['failed']} ({result.get('seconds', 0)} s)")
    for f in result["failures"]:
        where = f" at event {f['event_id']}" if "event_id" in f else ""
        console.print(f"  FAILED {f.get('workflow_type')} {f['workflow_id']} ({f['run_id']}){where}: {f['error']}",
                      highlight=False, markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    audit = typer.Typer(no_args_is_help=True, help="Audit: timelines from workflow histories, replay verification, "
                                                   "export.")
    app.add_typer(audit, name="audit")

    @audit.command()
    def show(workflow_id: str,
             full: Annotated[bool, typer.Option("--full", help="Show exactly what each model saw and said "
                                                "(resolving blobs).")] = False,
             run_id: Annotated[str | None, typer.Option("--run-id")] = None,
             as_json: JsonFlag = False) -> None:
        """A request's timeline: routing, model calls (hashes, tokens), guardrails, permissions, children, lockdown."""
        from temporalio.service import RPCError

        from hybrid_llm.audit import timeline
        from hybrid_llm.temporal import connect

        async def go():
            cfg = settings()
            client = await connect(cfg)
            blobs = _blob_store(cfg) if full else None
            try:
                return await timeline.show(client, workflow_id, run_id=run_id, full=full, blobs=blobs)
            except RPCError as e:
                raise CLIError(f"{workflow_id}: {e.message}") from None

        t = run(go())
        if as_json:
            print(json.dumps(t, ensure_ascii=False, default=str))
        else:
            _print_timeline(t)

    @audit.command()
    def verify(workflow_id: Annotated[str | None, typer.Argument(help="One workflow (its latest run).")] = None,
               all_: Annotated[bool, typer.Option("--all", help="Every run of our workflow types.")] = False,
               query: Annotated[str | None, typer.Option("--query", help="Narrow --all by a visibility query, e.g. "
                                                         "\"StartTime > '2026-11-01T00:00:00Z'\".")] = None,
               file: Annotated[list[Path] | None, typer.Option("--file", help="A history JSON file (repeatable).")] = None,
               dir_: Annotated[Path | None, typer.Option("--dir", help="A folder of history JSON files.")] = None,
               as_json: JsonFlag = False) -> None:
        """Replay histories against the current workflow code; a mismatch names the workflow and the event.
        Exit 1 when any fails."""
        from hybrid_llm.audit import replay

        if not (workflow_id or all_ or file or dir_):
            raise CLIError("say what to verify: WORKFLOW_ID, --all, --file PATH or --dir DIR", code=2)

        async def go():
            histories = []
            if file or dir_:
                paths = [*(file or []), *([dir_] if dir_ else [])]
                missing = [str(p) for p in paths if not p.exists()]
                if missing:
                    raise CLIError(f"no such file or folder: {', '.join(missing)}", code=2)
                try:
                    histories += replay.load_files(paths)
                except (ValueError, KeyError) as e:
                    raise CLIError(f"not a history JSON file: {e}", code=2) from None
            if workflow_id or all_:
                histories += await _fetch(workflow_id, all_, query)
            from hybrid_llm.temporal import keyring_for

            return await replay.verify(histories, keyring=keyring_for(settings(), create=False))

        result = run(go())
        _emit(result, as_json)
        if result["failed"]:
            raise typer.Exit(1)

    @audit.command()
    def export(workflow_id: Annotated[str | None, typer.Argument()] = None,
               all_: Annotated[bool, typer.Option("--all", help="Every run of our workflow types.")] = False,
               query: Annotated[str | None, typer.Option("--query", help="Narrow --all by a visibility query.")] = None,
               out: Annotated[Path, typer.Option("--out", help="Folder to write <workflow_id>__<run_id>.json to.")]
               = Path("audit-export"),
               as_json: JsonFlag = False) -> None:
        """Write histories as JSON files, for archiving; `audit verify --dir` replays them later."""
        from hybrid_llm.audit import replay

        if not (workflow_id or all_):
            raise CLIError("say what to export: WORKFLOW_ID or --all", code=2)
        written = replay.export(run(_fetch(workflow_id, all_, query)), out)
        if as_json:
            print(json.dumps({"exported": len(written), "files": [str(p) for p in written]}))
        else:
            console.print(f"exported {len(written)} histories to {out}", highlight=False)


async def _fetch(workflow_id: str | None, all_: bool, query: str | None):
    from temporalio.service import RPCError

    from hybrid_llm.audit import replay
    from hybrid_llm.temporal import connect

    client = await connect(settings())
    runs: list[tuple[str, str | None]] = []
    try:
        if all_:
            runs += await replay.list_runs(client, query)
        if workflow_id:
            runs.append((workflow_id, None))
        return await replay.fetch_histories(client, runs)
    except RPCError as e:
        raise CLIError(f"fetching histories: {e.message}") from None
