"""`hybrid-llm keys create | list | revoke`: API keys (operators only; locally or through the API)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from hybrid_llm.cli.common import CLIError, api_call, console, local_operator, remote, settings

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `12h`, `30d`, `2w`, or combined like `1d12h`."""
    text = text.strip().lower()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise CLIError(f"invalid duration {text!r}: use e.g. 90s, 15m, 12h, 30d, 2w or 1d12h", code=2)
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not 0 < seconds <= 100 * 365 * 86400:
        raise CLIError("the duration must be positive and at most 100 years", code=2)
    return timedelta(seconds=seconds)


def _store(cfg):
    import sqlalchemy as sa

    from activities.keys_store import KeyStore

    return KeyStore(sa.create_engine(cfg.effective_database_url, poolclass=sa.pool.NullPool,
                                     connect_args={"connect_timeout": 5}))


def register(app: typer.Typer) -> None:
    keys = typer.Typer(no_args_is_help=True, help="API keys: who may call the platform, with which roles and "
                                                  "limits (needs the operator role).")
    app.add_typer(keys, name="keys")

    @keys.command()
    def init() -> None:
        """Write the local operator credential (`<state dir>/operator.key`, 0600) as `up` does; for deployments
        without `up` (compose): needs direct access to the database, which is the authority over keys anyway."""
        from hybrid_llm.identity import ensure_local_credential

        cfg = settings()
        if remote(cfg):
            raise CLIError("keys init writes a local credential: unset HYBRID_API_URL and HYBRID_API_KEY", code=2)
        path, created = ensure_local_credential(cfg)
        console.print(f"{'created' if created else 'kept'} the local operator credential {path}", highlight=False)

    @keys.command()
    def create(
        name: Annotated[str, typer.Argument(help="Who or what the key is for.")],
        role: Annotated[list[str], typer.Option("--role", "-r", help="user, approver, operator or auditor "
                                                                   "(repeat for several).")],
        models: Annotated[str | None, typer.Option(help="Model allowlist, comma-separated ids.")] = None,
        daily_tokens: Annotated[int | None, typer.Option(help="Token budget per UTC day.", min=0)] = None,
        rpm: Annotated[int | None, typer.Option(help="Requests per minute.", min=1)] = None,
        expires_in: Annotated[str | None, typer.Option(help="Lifetime, e.g. 30d, 12h, 2w.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """Create a key and print it once (only its hash is stored)."""
        from domain.principals import AccessRole

        try:
            roles = [AccessRole(r.strip().lower()) for r in role]
        except ValueError:
            raise CLIError(f"unknown role in {role}: use {', '.join(r.value for r in AccessRole)}", code=2) from None
        model_list = [m.strip() for m in models.split(",") if m.strip()] if models is not None else None
        lifetime = parse_duration(expires_in) if expires_in else None
        cfg = settings()
        if remote(cfg):
            created = api_call(cfg, "POST", "/v1/keys", json_body={
                "name": name, "roles": [r.value for r in roles], "models": model_list, "daily_tokens": daily_tokens,
                "rpm": rpm, "expires_in_s": lifetime.total_seconds() if lifetime else None})
        else:
            from domain.principals import AccessRole as R

            local_operator(cfg, R.OPERATOR)
            try:
                record, key = _store(cfg).create(name, tuple(roles), models=model_list, daily_tokens=daily_tokens,
                                                 rpm=rpm, expires_in=lifetime)
            except ValueError as e:
                raise CLIError(f"invalid key: {e}", code=2) from None
            created = {**record.model_dump(mode="json"), "key": key}
        assert isinstance(created, dict)
        if as_json:
            print(json.dumps(created))
            return
        console.print(f"key {created['id']} for {created['name']} ({', '.join(created['roles'])})", highlight=False)
        print(created["key"])
        console.print("[yellow]Shown once: store it now; only its hash is kept.[/]")

    @keys.command("list")
    def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
        """Every key with its roles, limits and status (never the key itself)."""
        from activities.keys_store import KeyRecord
        from domain.principals import AccessRole

        cfg = settings()
        if remote(cfg):
            raw = api_call(cfg, "GET", "/v1/keys")
            records = [KeyRecord.model_validate(r) for r in raw]  # type: ignore[union-attr]
        else:
            local_operator(cfg, AccessRole.OPERATOR)
            records = _store(cfg).list()
        if as_json:
            print(json.dumps([{**r.model_dump(mode="json"), "status": r.status()} for r in records]))
            return
        table = Table(title="API keys")
        for col in ("id", "name", "roles", "models", "daily tokens", "rpm", "expires", "status"):
            table.add_column(col, overflow="fold")
        for r in records:
            table.add_row(r.id, r.name, ", ".join(r.roles), ", ".join(r.models) if r.models is not None else "all",
                          str(r.daily_tokens or "-"), str(r.rpm or "-"),
                          r.expires_at.strftime("%Y-%m-%d %H:%M") if r.expires_at else "never", r.status())
        console.print(table if records else "no keys")

    @keys.command()
    def resume(key_id: Annotated[str, typer.Argument(help="The key's id (see `keys list`).")]) -> None:
        """Lift a key's suspension (a revoked or expired key stays refused)."""
        from activities.keys_store import KEY_ID_RE, UnknownKey
        from domain.principals import AccessRole

        if not KEY_ID_RE.match(key_id):
            raise CLIError(f"invalid key id {key_id!r}: 12 hex characters (see `keys list`)", code=2)
        cfg = settings()
        if remote(cfg):
            record = api_call(cfg, "POST", f"/v1/keys/{key_id}/resume")
        else:
            local_operator(cfg, AccessRole.OPERATOR)
            try:
                record = _store(cfg).resume(key_id).model_dump(mode="json")
            except UnknownKey as e:
                raise CLIError(str(e), code=2) from None
        assert isinstance(record, dict)
        console.print(f"key {key_id}: suspension lifted", highlight=False)

    @keys.command()
    def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (see `keys list`).")],
               as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
        """Revoke a key: refused from its next request on."""
        from activities.keys_store import KEY_ID_RE, UnknownKey
        from domain.principals import AccessRole

        if not KEY_ID_RE.match(key_id):
            raise CLIError(f"invalid key id {key_id!r}: 12 hex characters (see `keys list`)", code=2)
        cfg = settings()
        if remote(cfg):
            record = api_call(cfg, "POST", f"/v1/keys/{key_id}/revoke")
        else:
            local_operator(cfg, AccessRole.OPERATOR)
            try:
                record = _store(cfg).revoke(key_id).model_dump(mode="json")
            except UnknownKey as e:
                raise CLIError(str(e), code=2) from None
        if as_json:
            print(json.dumps(record))
        else:
            console.print(f"revoked key {key_id}", highlight=False)
