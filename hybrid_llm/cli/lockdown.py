"""`hybrid-llm lockdown engage | status | release | set-secret`: the panic button and its authenticated release."""

from __future__ import annotations

import getpass
import json
import sys
from typing import Annotated

import typer

from hybrid_llm.cli import remote as api
from domain.principals import AccessRole
from hybrid_llm.cli.common import CLIError, console, local_actor, remote, run, settings


def _read_secret(prompt: str, from_stdin: bool, confirm: bool = False) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise CLIError("no terminal to ask for the secret: pass --secret-stdin and pipe it in", code=2)
    secret = getpass.getpass(prompt)
    if confirm and getpass.getpass("again: ") != secret:
        raise CLIError("the two secrets differ", code=2)
    return secret


JsonFlag = Annotated[bool, typer.Option("--json", help="Print the state as JSON.")]


def register(app: typer.Typer) -> None:
    lockdown = typer.Typer(no_args_is_help=True, help="Lock the platform down (every workflow pauses, nothing "
                                                      "writes) and release it with the secret.")
    app.add_typer(lockdown, name="lockdown")

    @lockdown.command()
    def engage(reason: Annotated[str, typer.Option("--reason", "-r", help="Why (recorded in history).")],
               as_json: JsonFlag = False) -> None:
        """Panic button: pause every workflow and stop every LLM call, file write and sandbox run."""
        from hybrid_llm import lockdown_client
        from hybrid_llm.temporal import connect

        async def go():
            cfg = settings()
            return await lockdown_client.engage(await connect(cfg), cfg, reason,
                                                actor=local_actor(cfg, AccessRole.OPERATOR))

        _show(api.lockdown_engage(settings(), reason) if remote(settings()) else run(go()), as_json)

    @lockdown.command()
    def status(as_json: JsonFlag = False) -> None:
        """Locked or not, why, by what trigger, when and by whom."""
        from hybrid_llm import lockdown_client
        from hybrid_llm.temporal import connect

        async def go():
            cfg = settings()
            return await lockdown_client.current(await connect(cfg), cfg)

        _show(api.lockdown_state(settings()) if remote(settings()) else run(go()), as_json)

    @lockdown.command()
    def release(secret_stdin: Annotated[bool, typer.Option(help="Read the secret from stdin.")] = False,
                as_json: JsonFlag = False) -> None:
        """Release with the secret; paused workflows resume where they stopped."""
        from hybrid_llm import lockdown_client
        from hybrid_llm.temporal import connect

        secret = _read_secret("lockdown secret: ", secret_stdin)

        async def go():
            cfg = settings()
            try:
                return await lockdown_client.release(await connect(cfg), cfg, secret,
                                                     actor=local_actor(cfg, AccessRole.OPERATOR))
            except lockdown_client.LockdownError as e:
                raise CLIError(f"{e.kind}: {e}") from None

        _show(api.lockdown_release(settings(), secret) if remote(settings()) else run(go()), as_json)

    @lockdown.command("set-secret")
    def set_secret(secret_stdin: Annotated[bool, typer.Option(
            help="Read the new secret (and then the current one, when changing it) from stdin, one per line.")] = False,
            change: Annotated[bool, typer.Option(help="Change an existing secret (asks for the current one).")] = False
    ) -> None:
        """Set the release secret (stored only as a salted scrypt hash in PostgreSQL)."""
        from hybrid_llm import lockdown_client

        secret = _read_secret("new lockdown secret: ", secret_stdin, confirm=True)
        current = _read_secret("current lockdown secret: ", secret_stdin) if change else None
        try:
            lockdown_client.set_secret(settings(), secret, current)
        except lockdown_client.LockdownError as e:
            raise CLIError(str(e), code=2) from None
        console.print("lockdown secret set")


def _show(state, as_json: bool) -> None:
    if as_json:
        print(json.dumps(state.model_dump(mode="json")))
        return
    if state.locked:
        console.print(f"[bold red]LOCKED[/] since {state.changed_at} by {state.actor} "
                      f"(trigger: {state.trigger}, epoch {state.epoch})\nreason: {state.reason}", highlight=False)
    else:
        console.print(f"[green]unlocked[/] (epoch {state.epoch})"
                      + (f", last change {state.changed_at} by {state.actor}" if state.changed_at else ""),
                      highlight=False)
