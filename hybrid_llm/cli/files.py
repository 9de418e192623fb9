"""`hybrid-llm files`: the platform root's files. `check` says what the permission policy allows, touching nothing."""

from __future__ import annotations

import json
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from hybrid_llm.cli.common import CLIError

MAX_LINE_BYTES = 64 * 1024


class CheckActor(StrEnum):
    MODEL = "model"
    USER = "user"
    SYSTEM = "system"


class CheckOp(StrEnum):
    READ = "read"
    WRITE = "write"
    DELETE = "delete"


def register(app: typer.Typer) -> None:
    files = typer.Typer(no_args_is_help=True, help="The platform root: downloads/, uploads/ (with .versions/), rag/.")
    app.add_typer(files, name="files")
    from hybrid_llm.cli.rag import register_files  # history, restore (versioned uploads)

    register_files(files)

    @files.command()
    def check(
        root: Annotated[Path | None, typer.Option(help="Platform root (default: the configured root).")] = None,
        actor: Annotated[CheckActor, typer.Option(help="Who asks.")] = CheckActor.MODEL,
        op: Annotated[CheckOp, typer.Option(help="What they want to do.")] = CheckOp.READ,
        model: Annotated[str | None, typer.Option("--model", help="Model id (per-model overrides).")] = None,
        capability: Annotated[list[str] | None, typer.Option(help="A capability of the model (repeatable).")] = None,
        policy_file: Annotated[Path | None, typer.Option("--policy", help="Policy TOML (default: built-in).")] = None,
        locked: Annotated[bool, typer.Option("--locked", help="Judge as under lockdown (read-only).")] = False,
    ) -> None:
        """Read JSON lines {"path": ...} on stdin; write {"decision", "reason", "rule"} per line. Touches nothing."""
        from activities.filesystem import PlatformFiles
        from domain.registry import Capability

        if root is None:
            from hybrid_llm.cli.common import settings

            root = settings().root
        assert root is not None
        if not root.is_dir():
            raise CLIError(f"platform root {root} does not exist or is not a directory", code=2)
        try:
            capabilities = tuple(Capability(c) for c in capability or ())
        except ValueError as e:
            raise CLIError(f"{e}; known capabilities: {', '.join(c.value for c in Capability)}", code=2) from None
        if model is not None and not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", model):
            raise CLIError(f"invalid model id {model!r}", code=2)
        policy = _load_policy(policy_file)
        platform = PlatformFiles(root)
        for raw in sys.stdin.buffer:
            out = _check_line(platform, raw, actor.value, op.value, policy, locked, model, capabilities)
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()


def _load_policy(path: Path | None):
    from pydantic import ValidationError

    from domain.permissions import PermissionPolicy

    if path is None:
        return PermissionPolicy()
    try:
        return PermissionPolicy.from_toml(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise CLIError(f"cannot read policy file {path}: {e.strerror}", code=2) from None
    except ValidationError as e:
        from hybrid_llm.cli.common import describe_validation

        raise CLIError(f"invalid policy file {path}: {describe_validation(e)}", code=2) from None
    except ValueError as e:  # tomllib.TOMLDecodeError and UnsafePath in a rule
        raise CLIError(f"invalid policy file {path}: {e}", code=2) from None


def _check_line(platform, raw: bytes, actor: str, op: str, policy, locked: bool, model: str | None,
                capabilities) -> dict[str, str]:
    """One answer per input line; anything unexpected is a deny (fail-safe), never a crash."""
    def invalid(why: str) -> dict[str, str]:
        return {"decision": "deny", "reason": f"invalid input: {why}", "rule": "input"}

    if len(raw) > MAX_LINE_BYTES:
        return invalid(f"line longer than {MAX_LINE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return invalid(f"not UTF-8 ({e.reason} at byte {e.start})")
    if not text.strip():
        return invalid("empty line")
    try:
        item = json.loads(text)
    except json.JSONDecodeError as e:
        return invalid(f"not JSON ({e.msg})")
    except RecursionError:
        return invalid("not JSON (nested too deeply)")
    if not isinstance(item, dict) or "path" not in item:
        return invalid('expected an object {"path": ...}')
    if not isinstance(item["path"], str):
        return invalid(f'"path" must be a string, not {type(item["path"]).__name__}')
    try:
        decision = platform.check(actor, op, item["path"], policy, locked, model_id=model, capabilities=capabilities)
    except Exception as e:  # noqa: BLE001 - fail safe: a bug in checking must not allow anything
        return {"decision": "deny", "reason": f"check failed: {type(e).__name__}", "rule": "error"}
    return {"decision": decision.decision, "reason": decision.reason, "rule": decision.rule}
