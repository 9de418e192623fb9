"""`hybrid-llm codec status | rotate`: the payload codec's keyring (the key that seals every Temporal payload)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from hybrid_llm.cli.common import CLIError, console, settings

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register(app: typer.Typer) -> None:
    codec = typer.Typer(no_args_is_help=True, help="The payload codec's keyring (sealing every Temporal payload).")
    app.add_typer(codec, name="codec")

    @codec.command()
    def status(as_json: AsJson = False) -> None:
        """Where the keyring is, its active key id and every key id it can open (never the keys)."""
        from hybrid_llm.codec import KeyringError
        from hybrid_llm.temporal import keyring_for

        cfg = settings()
        try:
            ring = keyring_for(cfg, create=False)
        except KeyringError as e:
            raise CLIError(str(e), code=2) from None
        info = {"file": str(cfg.codec_keyring_path), "active": ring.active, "keys": sorted(ring.keys)}
        print(json.dumps(info)) if as_json else console.print(
            f"{info['file']}: active {info['active']}; opens {', '.join(info['keys'])}", highlight=False)

    @codec.command()
    def rotate(as_json: AsJson = False) -> None:
        """Add a new key and make it the one that seals; old keys stay to open what they sealed. Restart the
        worker and the API (`hybrid-llm down && hybrid-llm up`) so they seal with it."""
        from hybrid_llm.codec import KeyringError, write_keyring
        from hybrid_llm.temporal import keyring_for

        cfg = settings()
        try:
            ring = keyring_for(cfg, create=False).rotated()
        except KeyringError as e:
            raise CLIError(str(e), code=2) from None
        write_keyring(cfg.codec_keyring_path, ring, exclusive=False)
        info = {"file": str(cfg.codec_keyring_path), "active": ring.active, "keys": sorted(ring.keys)}
        print(json.dumps(info)) if as_json else console.print(
            f"new active key {ring.active}; restart the worker and the API so they seal with it", highlight=False)
