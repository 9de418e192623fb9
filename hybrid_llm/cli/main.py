"""`hybrid-llm`: ask models, manage the embedded stack, the pool, the worker and the API."""

from __future__ import annotations

import os
import sys

import typer
from typer._click.exceptions import ClickException  # typer bundles its own click
from typer.exceptions import Abort, Exit
from pydantic import ValidationError
from rich.markup import escape

from hybrid_llm.cli.common import CLIError, describe_validation, err_console

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Hybrid LLM Platform: route requests to local and cloud models through durable workflows.")


def _register() -> None:
    from hybrid_llm.cli import approvals, ask, audit, codec, files, guard, keys, lockdown, models, rag, requests, \
        sandbox, serve, stack, worker

    for module in (approvals, ask, audit, codec, files, guard, keys, lockdown, models, rag, requests, sandbox, serve,
                   stack, worker):
        module.register(app)


def _message_for(exc: BaseException) -> tuple[str, int] | None:
    """Known failures become one line and an exit code; anything else is a bug and keeps its traceback."""
    from hybrid_llm.registry_file import RegistryError
    from hybrid_llm.temporal import TemporalUnavailable

    if isinstance(exc, CLIError):
        return str(exc), exc.code
    if isinstance(exc, TemporalUnavailable):
        return str(exc), 3
    if isinstance(exc, RegistryError):
        return str(exc), 2
    if isinstance(exc, ValidationError):
        return f"invalid input: {describe_validation(exc)}", 2
    try:
        from hybrid_llm.stack import StackError
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, StackError):
        return str(exc), 4
    import sqlalchemy as sa

    if isinstance(exc, sa.exc.OperationalError):  # e.g. the keys table's database is down
        reason = str(exc.orig or exc).strip().splitlines()[0]
        return f"cannot reach the database: {reason}; run `hybrid-llm up` or check HYBRID_DATABASE_URL", 4
    return None


def main() -> None:
    code = 0
    try:
        _register()
        app(standalone_mode=False)
    except Exit as e:
        code = e.exit_code
    except ClickException as e:
        e.show()
        code = e.exit_code
    except (Abort, KeyboardInterrupt):
        err_console.print("aborted")
        code = 130
    except Exception as e:  # noqa: BLE001 - the boundary of the program
        known = _message_for(e)
        if known is None:
            raise
        message, code = known
        err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    # Short Temporal client processes can crash at interpreter exit (sdk-python#300): leave at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
