"""Where the command rules come from: each family module declares its rules (`rule`) next to the checks that raise
them and registers those checks for the command names they judge (`handles`) or for every command (`every_command`).
`RULES` is derived from the declarations; nothing keeps a list by hand."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Handler = Callable[..., None]


@dataclass(frozen=True)
class Rule:
    name: str
    family: str  # the attack family (a corpus category) this rule detects
    summary: str
    module: str


_RULES: dict[str, Rule] = {}
HANDLERS: dict[str, list[Handler]] = {}
EVERY: list[Handler] = []


def key(command: str) -> str:
    return re.sub(r"\W", "_", command)


def rule(name: str, family: str, summary: str) -> str:
    """Declare a rule; returns its name (what a RuleHit carries). Declaring one name twice is a mistake."""
    import inspect

    module = inspect.currentframe().f_back.f_globals.get("__name__", "?")  # type: ignore[union-attr]
    old = _RULES.get(name)
    if old is not None and (old.family, old.module) != (family, module):
        raise ValueError(f"rule {name} is declared twice ({old.module} and {module})")
    _RULES[name] = Rule(name, family, summary, module)
    return name


def handles(*commands: str) -> Callable[[Handler], Handler]:
    """Register a check `fn(analyzer, cmd, argv)` for these command names (after sudo/env/... are peeled off)."""
    def deco(fn: Handler) -> Handler:
        for c in commands:
            HANDLERS.setdefault(key(c), []).append(fn)
        return fn
    return deco


def every_command(fn: Handler) -> Handler:
    """Register a check `fn(analyzer, cmd, argv, name)` that looks at every simple command."""
    EVERY.append(fn)
    return fn


def declared() -> dict[str, Rule]:
    return dict(_RULES)


def families() -> dict[str, list[str]]:
    """family -> rule names, derived from the declarations."""
    out: dict[str, list[str]] = {}
    for r in _RULES.values():
        out.setdefault(r.family, []).append(r.name)
    return {f: sorted(v) for f, v in sorted(out.items())}


def describe() -> list[dict[str, Any]]:
    return [{"rule": r.name, "family": r.family, "summary": r.summary, "module": r.module.rsplit(".", 1)[-1]}
            for r in sorted(_RULES.values(), key=lambda r: (r.family, r.name))]
