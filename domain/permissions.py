"""The permission policy: who may read, write, delete, reach the network, run sandboxes and delegate.

Pure: no I/O. `decide` judges a request against the policy as written; `activities.filesystem` adds symlink
resolution for file operations. Evaluation order, first match wins:

1. malformed requests, lockdown (everything but reads is denied), unsafe paths, system-only paths
   (`uploads/.versions/`) and the platform folders themselves: fixed rules, not configurable;
2. for models: the per-model override rules, then the grants of the model's capabilities (the strictest
   matching grant across capabilities), then the defaults for models;
3. for users and the system: their defaults;
4. nothing matched: the actor's `unmatched` effect for the operation (deny unless configured `ask`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.paths import SafePath, parse_path, safe_path
from domain.registry import Capability

_MODEL_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_HOST = re.compile(r"^(?:\*|(?:\*\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
                   r"|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$")


class Operation(StrEnum):
    READ = "read"
    WRITE = "write"
    DELETE = "delete"
    NETWORK = "network"
    SANDBOX = "sandbox"
    DELEGATE = "delegate"


FILE_OPERATIONS = frozenset({Operation.READ, Operation.WRITE, Operation.DELETE})
MODIFYING_FILE_OPERATIONS = frozenset({Operation.WRITE, Operation.DELETE})


class Actor(StrEnum):
    MODEL = "model"
    USER = "user"
    SYSTEM = "system"  # the platform's own code (versioning, indexing)


class Effect(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ASK = "ask"  # a person must decide


Decision = Literal["allow", "deny", "ask"]
_STRICTNESS = {"allow": 0, "ask": 1, "deny": 2}

# Fixed rules: written and deleted by the system actor only / never written or deleted by models and users.
SYSTEM_ONLY = (("uploads", ".versions"),)
PLATFORM_FOLDERS = (("downloads",), ("uploads",), ("rag",))


def _pattern_parts(pattern: str) -> tuple[tuple[str, ...], bool]:
    """`**` -> anything; `a/b/**` -> strictly inside a/b; `a/b` -> exactly a/b."""
    if pattern == "**":
        return (), True
    inside = pattern.endswith("/**")
    if "*" in (pattern[:-3] if inside else pattern):
        raise ValueError(f"path pattern {pattern!r}: only '**' and 'dir/**' are wildcards")
    return safe_path(pattern[:-3] if inside else pattern).parts, inside


def _host_matches(pattern: str, host: str) -> bool:
    name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not name:
        name, port = host, ""
    p_name, _, p_port = pattern.rpartition(":") if not pattern.endswith("]") else (pattern, "", "")
    if not p_name:
        p_name, p_port = pattern, ""
    if p_port and p_port != port:
        return False
    if p_name == "*":
        return True
    if p_name.startswith("*."):
        return name.endswith(p_name[1:])
    return name == p_name


class Rule(BaseModel):
    """One line of policy. `paths` apply to file operations, `hosts` to network, `targets` to delegation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operations: tuple[Operation, ...] = Field(min_length=1)
    effect: Effect = Effect.ALLOW
    paths: tuple[str, ...] = Field(default=(), description="`**`, `dir/**` (strictly inside) or an exact path")
    hosts: tuple[str, ...] = Field(default=(), description="`*`, `*.example.com`, `example.com[:port]`")
    targets: tuple[str, ...] = Field(default=("*",), description="model ids a delegation may go to, or `*`")
    name: str | None = Field(default=None, max_length=100)
    description: str | None = Field(default=None, max_length=500)

    @field_validator("paths")
    @classmethod
    def _valid_paths(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for p in paths:
            _pattern_parts(p)  # raises UnsafePath (a ValueError) on a bad pattern
        return paths

    @field_validator("hosts")
    @classmethod
    def _valid_hosts(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        for h in hosts:
            if not _HOST.match(h):
                raise ValueError(f"invalid host pattern {h!r}")
        return hosts

    @model_validator(mode="after")
    def _scopes(self) -> "Rule":
        if FILE_OPERATIONS.intersection(self.operations) and not self.paths:
            raise ValueError("a rule for read/write/delete needs 'paths'")
        if Operation.NETWORK in self.operations and not self.hosts:
            raise ValueError("a rule for network needs 'hosts'")
        return self

    def matches(self, request: "PermissionRequest", path: SafePath | None) -> bool:
        op = request.operation
        if op not in self.operations:
            return False
        if op in FILE_OPERATIONS:
            assert path is not None
            return any(_path_matches(p, path) for p in self.paths)
        if op == Operation.NETWORK:
            return request.host is not None and any(_host_matches(h, request.host) for h in self.hosts)
        if op == Operation.DELEGATE:
            return "*" in self.targets or request.target in self.targets
        return True

    def describe(self) -> str:
        if self.description:
            return self.description
        scope = self.paths or self.hosts or (self.targets if Operation.DELEGATE in self.operations else ())
        return f"{self.effect.value} {'/'.join(self.operations)}" + (f" on {', '.join(scope)}" if scope else "")


def _path_matches(pattern: str, path: SafePath) -> bool:
    prefix, inside = _pattern_parts(pattern)
    return path.is_within(prefix, strictly=inside and bool(prefix))


class ActorRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[Rule, ...] = ()
    unmatched: dict[Operation, Effect] = Field(default_factory=dict, description="default: deny")


def _rule(operations: Iterable[str], name: str, description: str, **kw: Any) -> Rule:
    return Rule(operations=tuple(Operation(o) for o in operations), name=name, description=description, **kw)


DEFAULT_MODEL_RULES = ActorRules(rules=(
    _rule(["read"], "model-read-areas", "models read downloads/, uploads/ and rag/",
          paths=("downloads", "downloads/**", "uploads", "uploads/**", "rag", "rag/**")),
    _rule(["write", "delete"], "model-write-downloads", "models write and delete inside downloads/",
          paths=("downloads/**",)),
))
DEFAULT_USER_RULES = ActorRules(rules=(
    _rule(["read"], "user-read-all", "users read everything under the platform root", paths=("**",)),
    _rule(["write", "delete"], "user-write-areas", "users write and delete inside uploads/ and downloads/",
          paths=("uploads/**", "downloads/**")),
    _rule(["sandbox"], "user-sandbox", "users run sandboxes"),
))
DEFAULT_SYSTEM_RULES = ActorRules(rules=(
    _rule(["read", "write", "delete"], "system-files", "the platform's own code manages files under the root",
          paths=("**",)),
))


# Delegation is granted per capability: the seed's collaboration (a generalist hands code to a coder, the
# coder asks a security reviewer) works out of the box; reviewers (security) delegate nowhere.
DEFAULT_CAPABILITY_GRANTS: dict[Capability, tuple[Rule, ...]] = {
    Capability.GENERAL: (_rule(["delegate"], "general-delegates", "generalists hand work to specialists"),),
    Capability.CODE: (_rule(["delegate"], "code-asks-review", "coders ask a security reviewer"),),
}


class PermissionPolicy(BaseModel):
    """The whole policy; `PermissionPolicy()` is the shipped default. A field given in a file replaces it whole."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ActorRules = DEFAULT_MODEL_RULES
    user: ActorRules = DEFAULT_USER_RULES
    system: ActorRules = DEFAULT_SYSTEM_RULES
    overrides: dict[str, tuple[Rule, ...]] = Field(default_factory=dict, description="per model id")
    capabilities: dict[Capability, tuple[Rule, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_CAPABILITY_GRANTS), description="grants per capability")

    @field_validator("overrides")
    @classmethod
    def _model_ids(cls, overrides: dict[str, tuple[Rule, ...]]) -> dict[str, tuple[Rule, ...]]:
        bad = [k for k in overrides if not re.match(_MODEL_ID, k)]
        if bad:
            raise ValueError(f"invalid model id(s) in overrides: {', '.join(map(repr, bad))}")
        return overrides

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "PermissionPolicy":
        return cls.model_validate(dict(data))

    @classmethod
    def from_toml(cls, text: str) -> "PermissionPolicy":
        return cls.from_mapping(tomllib.loads(text))

    def for_actor(self, actor: Actor) -> ActorRules:
        return {Actor.MODEL: self.model, Actor.USER: self.user, Actor.SYSTEM: self.system}[actor]


class PermissionRequest(BaseModel):
    """What an actor asks to do, and why. `path` is the raw requested string: `decide` validates it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actor: Actor
    operation: Operation
    model_id: str | None = Field(default=None, pattern=_MODEL_ID)
    capabilities: tuple[Capability, ...] = ()
    path: str | None = Field(default=None, max_length=16_384)
    host: str | None = Field(default=None, max_length=300)
    target: str | None = Field(default=None, max_length=64, description="the model a delegation goes to")
    explanation: str = Field(default="", max_length=2000)


class ApprovalRules(BaseModel):
    """How the worker that checked the request wants people to decide (recorded in history with the decision)."""

    model_config = ConfigDict(frozen=True)

    four_eyes: bool = Field(default=True, description="the approver must not be the requester")
    ttl_s: float = Field(default=900.0, gt=0, description="an approval must be used within this time")
    policy_version: str = Field(default="", max_length=64, description="hash of the policy that asked")


class PermissionDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    decision: Decision
    reason: str
    rule: str = Field(description="which rule decided: lockdown, path, system_only, model[0], override:ID[0], ...")
    path: str | None = Field(default=None, description="the normalised platform-relative path, when valid")
    approval: ApprovalRules | None = Field(default=None, description="for `ask`: how a person must decide "
                                           "(the checking worker's rules and policy version)")

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"


def strictest(first: PermissionDecision, *others: PermissionDecision) -> PermissionDecision:
    """deny > ask > allow; the first of equals wins."""
    best = first
    for d in others:
        if _STRICTNESS[d.decision] > _STRICTNESS[best.decision]:
            best = d
    return best


def _deny(reason: str, rule: str, path: SafePath | None = None) -> PermissionDecision:
    return PermissionDecision(decision="deny", reason=reason, rule=rule, path=path.posix if path else None)


def _what(request: PermissionRequest, path: SafePath | None) -> str:
    if path is not None:
        return f"{request.operation.value} {path.posix}"
    if request.operation == Operation.NETWORK:
        return f"reach {request.host}"
    if request.operation == Operation.DELEGATE:
        return f"delegate to {request.target or 'another model'}"
    return "run a sandbox"


def decide(policy: PermissionPolicy, request: PermissionRequest, *, locked: bool) -> PermissionDecision:
    """The policy's answer to one request. Never raises for bad input: it denies with a reason."""
    op, actor = request.operation, request.actor
    if op in FILE_OPERATIONS and request.path is None:
        return _deny(f"invalid request: {op.value} needs a path", "invalid")
    if op == Operation.NETWORK:
        host = (request.host or "").lower().rstrip(".")
        if not host or "*" in host or not _HOST.match(host):
            return _deny(f"invalid request: network needs a valid host, not {request.host!r}", "invalid")
        request = request.model_copy(update={"host": host})
    if locked and op != Operation.READ:
        return _deny(f"lockdown: the platform is read-only, {op.value} is denied", "lockdown")
    path: SafePath | None = None
    if op in FILE_OPERATIONS:
        parsed = parse_path(request.path)
        if not isinstance(parsed, SafePath):
            return _deny(f"unsafe path: {parsed.reason}", "path")
        path = parsed
        if op in MODIFYING_FILE_OPERATIONS and actor != Actor.SYSTEM:
            if any(path.is_within(p) for p in SYSTEM_ONLY):
                return _deny(f"{path.posix}: uploads/.versions/ is written only by the platform's versioning",
                             "system_only", path)
            if path.parts in PLATFORM_FOLDERS:
                return _deny(f"{path.posix}/ is a platform folder: only what is inside it may be "
                             f"{'deleted' if op == Operation.DELETE else 'written'}", "platform_folder", path)

    if actor == Actor.MODEL:
        if request.model_id in policy.overrides:
            found = _first_match(f"override:{request.model_id}", policy.overrides[request.model_id], request, path)
            if found:
                return found
        granted = [d for c in dict.fromkeys(request.capabilities)
                   if (d := _first_match(f"capability:{c.value}", policy.capabilities.get(c, ()), request, path))]
        if granted:
            return strictest(*granted)
    found = _first_match(actor.value, policy.for_actor(actor).rules, request, path)
    if found:
        return found

    effect = policy.for_actor(actor).unmatched.get(op, Effect.DENY)
    who = f"model {request.model_id}" if actor == Actor.MODEL and request.model_id else actor.value
    reason = f"no rule lets {who} {_what(request, path)}"
    reason += (" (outside the whitelist: denied by default)" if effect == Effect.DENY
               else f" ({effect.value} by default)")
    return PermissionDecision(decision=effect.value, reason=reason, rule="unmatched",
                              path=path.posix if path else None)


def _first_match(layer: str, rules: Iterable[Rule], request: PermissionRequest,
                 path: SafePath | None) -> PermissionDecision | None:
    for i, rule in enumerate(rules):
        if not rule.matches(request, path):
            continue
        what = _what(request, path)
        if rule.effect == Effect.ASK:
            reason = f"a person must decide whether {request.actor.value} may {what}: {rule.describe()}"
        else:
            verb = "may" if rule.effect == Effect.ALLOW else "may not"
            reason = f"{request.actor.value} {verb} {what}: {rule.describe()}"
        return PermissionDecision(decision=rule.effect.value, reason=reason, path=path.posix if path else None,
                                  rule=f"{layer}:{rule.name}" if rule.name else f"{layer}[{i}]")
    return None
