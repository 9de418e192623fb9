"""`hybrid-llm sandbox exec | list | show | approve | reject`: run code in a sandbox and review its output."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from domain.control_chars import escape_all, escape_controls
from domain.principals import AccessRole
from hybrid_llm.cli import remote as api
from hybrid_llm.cli.common import CLIError, console, local_operator, remote, run, settings

Note = Annotated[str, typer.Option(help="Why (recorded in history).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register(app: typer.Typer) -> None:
    sandbox = typer.Typer(no_args_is_help=True, help="Run code in a sandbox; review, approve or reject its output.")
    app.add_typer(sandbox, name="sandbox")

    @sandbox.command("exec", context_settings={"allow_extra_args": False})
    def exec_(command: Annotated[list[str], typer.Argument(help="The command, after `--`.")],
              backend: Annotated[str | None, typer.Option(help="namespace (default) or microvm.")] = None,
              approve: Annotated[bool, typer.Option("--approve", help="Approve the output up front (as you).")] = False,
              network: Annotated[list[str], typer.Option("--network", help="A host the command needs "
                                                                           "(a permission request).")] = [],  # noqa: B006
              file: Annotated[list[str], typer.Option("--file", help="NAME=PATH: an input file.")] = [],  # noqa: B006
              wall_s: Annotated[float | None, typer.Option(help="Wall-clock limit (s).")] = None,
              memory_mb: Annotated[int | None, typer.Option(help="Memory limit (MiB).")] = None,
              pids: Annotated[int | None, typer.Option(help="Process limit.")] = None,
              cpu_s: Annotated[int | None, typer.Option(help="CPU seconds in total.")] = None,
              output_bytes: Annotated[int | None, typer.Option(help="stdout + stderr limit (bytes).")] = None,
              as_json: AsJson = False) -> None:
        """Run CMD through the sandbox workflow; waits for the review unless --approve."""
        from domain.sandbox import Backend, Limits, Origin, ReviewDecision, SandboxSpec
        from hybrid_llm import sandbox_client
        from hybrid_llm.temporal import connect

        if backend not in (None, "namespace", "microvm"):
            raise CLIError(f"--backend must be namespace or microvm, not {backend!r}", code=2)
        files = {}
        for item in file:
            name, sep, path = item.partition("=")
            if not sep:
                raise CLIError(f"--file {item!r}: use NAME=PATH", code=2)
            try:
                files[name] = open(path, encoding="utf-8").read()
            except OSError as e:
                raise CLIError(f"--file {item}: {e.strerror}", code=2) from None
        try:
            asked = (("wall_s", wall_s), ("memory_mb", memory_mb), ("pids", pids), ("cpu_s", cpu_s),
                     ("output_bytes", output_bytes))
            limits = Limits(**{k: v for k, v in asked if v is not None})
        except ValueError as e:
            raise CLIError(f"invalid limits: {e}", code=2) from None
        # Locally the author is the local operator credential (approving up front needs approver); through the
        # API, the API names the key.
        me = None if remote(settings()) else local_operator(
            settings(), AccessRole.APPROVER if approve else AccessRole.USER)
        user = "cli:api" if me is None else me.label
        spec = SandboxSpec(command=tuple(command), files=files, backend=Backend(backend) if backend else None,
                           limits=limits, network_hosts=tuple(network), origin=Origin(actor="user", name=user))
        decision = (ReviewDecision(approve=True, by=user, note="approved up front (--approve)", principal=me)
                    if approve else None)

        async def go():
            cfg = settings()
            client = await connect(cfg)
            try:
                handle = await sandbox_client.start(client, cfg, spec, decision, requester=me)
            except sandbox_client.LimitsRefused as e:
                raise CLIError(str(e), code=2) from None
            if not approve and not as_json:
                console.print(f"{handle.id}: waiting for review: hybrid-llm sandbox approve|reject {handle.id}",
                              highlight=False)
            return await handle.result()

        outcome = api.sandbox_exec(settings(), spec, approve, quiet=as_json) if remote(settings()) else run(go())
        if as_json:
            print(json.dumps(outcome.model_dump(mode="json")))
        else:
            out, err = escape_controls(outcome.stdout), escape_controls(outcome.stderr)
            if out:
                print(out, end="" if out.endswith("\n") else "\n")
            if err:
                typer.echo(err, err=True, nl=not err.endswith("\n"))
            typer.echo(f"{outcome.workflow_id}: {outcome.status}, exit {outcome.exit_code}"
                       + (f", stopped: {outcome.stopped}" if outcome.stopped else "")
                       + (f" ({outcome.reason})" if outcome.reason else ""), err=True)
        if outcome.status in ("blocked", "failed"):
            raise CLIError(f"{outcome.status}: {outcome.reason}") if not as_json else typer.Exit(1)

    @sandbox.command("list")
    def list_(all_: Annotated[bool, typer.Option("--all", help="Closed ones too.")] = False,
              as_json: AsJson = False) -> None:
        """Sandbox runs (running ones by default), and which wait for a review."""
        from hybrid_llm import sandbox_client
        from hybrid_llm.temporal import connect

        async def go():
            cfg = settings()
            return await sandbox_client.listing(await connect(cfg), cfg, running_only=not all_)

        items = escape_all(api.sandbox_list(settings(), all_) if remote(settings()) else run(go()))
        if as_json:
            print(json.dumps(items))
            return
        table = Table(title="Sandboxes")
        for col in ("workflow id", "status", "awaiting review", "started"):
            table.add_column(col, overflow="fold")
        for i in items:
            table.add_row(i["workflow_id"], i["status"], "yes" if i["awaiting_review"] else "", i["started"] or "")
        console.print(table if items else "no sandboxes")

    @sandbox.command()
    def show(workflow_id: str, as_json: AsJson = False) -> None:
        """What a reviewer sees: the code, exit code, stdout, stderr and produced files (or the outcome)."""
        from hybrid_llm import sandbox_client
        from hybrid_llm.temporal import connect

        async def go():
            cfg = settings()
            try:
                return await sandbox_client.show(await connect(cfg), workflow_id)
            except sandbox_client.SandboxError as e:
                raise CLIError(str(e)) from None

        # Control characters as visible text: output cannot hide or move text.
        data = escape_all(api.sandbox_show(settings(), workflow_id) if remote(settings()) else run(go()))
        if as_json:
            print(json.dumps(data))
            return
        body = data.get("view") or data.get("outcome") or {}
        result = body.get("result") or body
        console.print(f"[bold]{data['workflow_id']}[/] {data['status']} {body.get('step', body.get('status', ''))}")
        if "code" in body:
            console.print("[bold]code:[/]", body["code"], highlight=False, markup=False)
        for key in ("exit_code", "stopped", "limits_hit"):
            if result.get(key) not in (None, []):
                console.print(f"{key}: {result[key]}", highlight=False)
        for key in ("stdout", "stderr"):
            if result.get(key):
                console.print(f"[bold]{key}:[/]")
                console.print(result[key], highlight=False, markup=False)
        for f in result.get("files", []):
            console.print(f"file: {f['path']} ({f['size']} bytes, sha256 {f['sha256'][:12]})", highlight=False)

    def _decide(workflow_id: str, approve: bool, note: str) -> None:
        from domain.sandbox import ReviewDecision
        from hybrid_llm import sandbox_client
        from hybrid_llm.temporal import connect

        async def go():
            cfg = settings()
            me = local_operator(cfg, AccessRole.APPROVER)
            decision = ReviewDecision(approve=approve, by=me.label, note=note, principal=me)
            try:
                return await sandbox_client.decide(await connect(cfg), workflow_id, decision)
            except sandbox_client.SandboxError as e:
                raise CLIError(str(e)) from None

        cfg = settings()
        outcome = api.sandbox_decide(cfg, workflow_id, approve, note) if remote(cfg) else run(go())
        console.print(f"{workflow_id}: {outcome}", highlight=False)

    @sandbox.command()
    def approve(workflow_id: str, note: Note = "") -> None:
        """Approve the output: produced files are delivered to downloads/sandbox-<id>/."""
        _decide(workflow_id, True, note)

    @sandbox.command()
    def reject(workflow_id: str, note: Note = "") -> None:
        """Reject the output: nothing is delivered."""
        _decide(workflow_id, False, note)
