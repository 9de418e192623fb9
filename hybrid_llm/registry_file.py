"""Load the model registry from TOML: resolve GGUF paths and gate cloud entries on their keys."""

from __future__ import annotations

import importlib.util
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from domain.registry import Registry

DEFAULT_REGISTRY = Path(__file__).with_name("models.toml")


class RegistryError(ValueError):
    """The registry file is missing or invalid; the message says what to fix."""


def resolve_model_path(spec: str, base: Path) -> str:
    """`pypi:<module>/<file>` -> the file inside that installed package (never imported)."""
    if spec.startswith("pypi:"):
        module, _, name = spec[len("pypi:"):].partition("/")
        try:
            found = importlib.util.find_spec(module)
        except ModuleNotFoundError:  # a dotted name whose parent package is missing
            found = None
        if found is None or not found.submodule_search_locations:
            # Keep a readable path; the pool reports it as missing with an install hint.
            return f"<package {module} is not installed>/{name}"
        return str(Path(list(found.submodule_search_locations)[0]) / name)
    path = Path(os.path.expandvars(spec)).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"model registry {path} does not exist (set HYBRID_MODELS_FILE to a TOML file)") from None
    except tomllib.TOMLDecodeError as e:
        raise RegistryError(f"model registry {path} is not valid TOML: {e}") from None


def _entries(path: Path) -> list[dict[str, Any]]:
    data = _read(path)
    models = data.get("models", [])
    if not isinstance(models, list):
        raise RegistryError(f"model registry {path}: 'models' must be an array of tables ([[models]])")
    entries = []
    for i, entry in enumerate(models):
        if not isinstance(entry, dict):
            raise RegistryError(f"model registry {path}: models[{i}] must be a table ([[models]]), not {entry!r}")
        entry = dict(entry)
        if isinstance(entry.get("path"), str):
            entry["path"] = resolve_model_path(entry["path"], path.parent)
        entries.append(entry)
    if path != DEFAULT_REGISTRY and data.get("include_defaults", False):
        own = {e.get("id") for e in entries}
        entries = [e for e in _entries(DEFAULT_REGISTRY) if e.get("id") not in own] + entries
    return entries


def _where(loc: tuple, entries: list[dict[str, Any]]) -> str:
    """`models.3.capabilities.0` -> `model 'x' capabilities.0: ` (an index alone would count included defaults)."""
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        model_id = entries[loc[1]].get("id")
        where = f"model {model_id!r}" if isinstance(model_id, str) else f"models[{loc[1]}]"
        field = ".".join(str(p) for p in loc[2:])
        return f"{where} {field}: " if field else f"{where}: "
    return f"{'.'.join(str(p) for p in loc)}: " if loc else ""


def load_registry(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Registry:
    environ = os.environ if environ is None else environ
    path = (path or DEFAULT_REGISTRY).expanduser().resolve()
    entries = _entries(path)
    for entry in entries:
        key_env = entry.get("api_key_env")
        if key_env and not environ.get(key_env) and entry.get("enabled", True):
            entry["enabled"] = False
            entry["disabled_reason"] = f"set {key_env} to enable"
    try:
        return Registry(models=tuple(entries))
    except ValidationError as e:
        problems = "; ".join(f"{_where(err['loc'], entries)}{err['msg']}" for err in e.errors())
        raise RegistryError(f"model registry {path} is invalid: {problems}") from None
