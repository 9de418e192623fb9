"""What every command shares: settings, one async runner, and errors printed as one clear line."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from pydantic import ValidationError
from rich.console import Console

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)


class CLIError(Exception):
    """An error for the person at the terminal: printed without a traceback, exit code `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def describe_validation(e: ValidationError) -> str:
    parts = []
    for err in e.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "input"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def settings():
    from hybrid_llm.settings import Settings

    try:
        return Settings()
    except ValidationError as e:
        raise CLIError(f"invalid configuration: {describe_validation(e)}", code=2) from None
    except ValueError as e:
        raise CLIError(f"invalid configuration: {e}", code=2) from None


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]
