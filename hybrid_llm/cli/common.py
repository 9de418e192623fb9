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


# Remote mode: HYBRID_API_URL + HYBRID_API_KEY send every command through the HTTP API with that key. ----------
def remote(cfg) -> bool:
    """Whether this CLI goes through the API (both HYBRID_API_URL and HYBRID_API_KEY set)."""
    if bool(cfg.api_url) != bool(cfg.api_key):
        raise CLIError("set both HYBRID_API_URL and HYBRID_API_KEY (or neither, to act locally)", code=2)
    return bool(cfg.api_url)


def api_call(cfg, method: str, path: str, *, json_body: object = None, params: dict | None = None,
             timeout_s: float = 60.0, files: dict | None = None, data: dict | None = None) -> object:
    """One call to the remote API as HYBRID_API_KEY; its JSON answer, or a CLIError with the API's message
    (exit 5 for 401/403, 2 for other refusals, 3 when the API cannot be reached or fails)."""
    import httpx

    assert cfg.api_url and cfg.api_key
    url = cfg.api_url.rstrip("/") + path
    headers = {"Authorization": f"Bearer {cfg.api_key.get_secret_value()}"}
    try:
        r = httpx.request(method, url, json=json_body, params=params, headers=headers, timeout=timeout_s,
                          files=files, data=data)
    except httpx.HTTPError as e:
        raise CLIError(f"cannot reach the API at {cfg.api_url}: {e}", code=3) from None
    if r.status_code < 400:
        return r.json() if r.content else None
    try:
        message = r.json().get("message") or r.text
    except ValueError:
        message = r.text
    code = 5 if r.status_code in (401, 403) else 3 if r.status_code >= 500 else 2
    raise CLIError(f"the API refused ({r.status_code}): {message}", code=code)


def local_operator(cfg, *roles):
    """The local operator principal (from `<state_dir>/operator.key`), checked for `roles`; a CLIError otherwise."""
    from hybrid_llm.identity import CredentialError, local_principal

    try:
        principal = local_principal(cfg)
    except CredentialError as e:
        raise CLIError(str(e), code=5) from None
    if roles and not principal.has(*roles):
        raise CLIError(f"{principal.label} lacks the role {' or '.join(roles)}", code=5)
    return principal


def local_actor(cfg, *roles) -> str:
    """How a local CLI decision names its author: `cli:<name> (<key id>)` of the local operator credential, after
    checking it holds `roles` (CLIError otherwise)."""
    principal = local_operator(cfg, *roles)
    label = f"cli:{principal.label}"
    return label if len(label) <= 200 else f"cli:{principal.id}"
