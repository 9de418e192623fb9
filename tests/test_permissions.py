"""The permission policy, as pure decisions: the default matrix, lockdown, overrides, grants, asking a person."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from domain.permissions import (
    Effect,
    Operation,
    PermissionPolicy,
    PermissionRequest,
    Rule,
    decide,
    strictest,
)
from domain.registry import Capability
from tests.test_paths import ATTACKS

DEFAULT = PermissionPolicy()


def ask(actor: str, op: str, path: str | None = None, *, policy: PermissionPolicy = DEFAULT, locked: bool = False,
        model_id: str | None = "m1", caps: tuple[str, ...] = (), **kw):
    request = PermissionRequest(actor=actor, operation=op, path=path, model_id=model_id if actor == "model" else None,
                                capabilities=tuple(Capability(c) for c in caps), **kw)
    return decide(policy, request, locked=locked)


# (actor, operation, path, decision)
MATRIX = [
    ("model", "read", "uploads/a.txt", "allow"),
    ("model", "read", "downloads/out/x.txt", "allow"),
    ("model", "read", "rag/manifest.json", "allow"),
    ("model", "read", "uploads/.versions/abc", "allow"),
    ("model", "read", "downloads", "allow"),  # listing the folder; writing it is never allowed
    ("model", "read", "notes.txt", "deny"),
    ("model", "read", "secrets/key", "deny"),
    ("model", "write", "downloads/out/x.txt", "allow"),
    ("model", "write", "downloads/x.txt", "allow"),
    ("model", "delete", "downloads/x.txt", "allow"),
    ("model", "write", "downloads", "deny"),
    ("model", "delete", "downloads", "deny"),
    ("model", "write", "./downloads/", "deny"),
    ("model", "write", "uploads/a", "deny"),
    ("model", "delete", "uploads/a", "deny"),
    ("model", "write", "rag/x", "deny"),
    ("model", "delete", "rag/x", "deny"),
    ("model", "write", "uploads/.versions/x", "deny"),
    ("model", "delete", "uploads/.versions/x", "deny"),
    ("model", "write", "notes.txt", "deny"),
    ("user", "read", "uploads/a", "allow"),
    ("user", "read", "notes.txt", "allow"),
    ("user", "read", "uploads/.versions/x", "allow"),
    ("user", "read", "rag/x", "allow"),
    ("user", "write", "uploads/a", "allow"),
    ("user", "delete", "uploads/a", "allow"),
    ("user", "write", "downloads/a", "allow"),
    ("user", "delete", "downloads/a", "allow"),
    ("user", "write", "uploads", "deny"),
    ("user", "delete", "downloads", "deny"),
    ("user", "write", "uploads/.versions/x", "deny"),
    ("user", "delete", "uploads/.versions", "deny"),
    ("user", "write", "rag/x", "deny"),
    ("user", "write", "notes.txt", "deny"),
    ("system", "write", "uploads/.versions/x", "allow"),
    ("system", "delete", "uploads/.versions/x", "allow"),
    ("system", "write", "rag/chunks.json", "allow"),
    ("system", "read", "uploads/a", "allow"),
]


@pytest.mark.parametrize(("actor", "op", "path", "expected"), MATRIX)
def test_default_matrix(actor, op, path, expected):
    d = ask(actor, op, path)
    assert d.decision == expected, d
    assert d.reason and d.rule


def test_reasons_name_the_rule():
    d = ask("model", "write", "uploads/.versions/x")
    assert d.rule == "system_only" and ".versions" in d.reason
    d = ask("model", "write", "downloads")
    assert d.rule == "platform_folder"
    d = ask("model", "write", "uploads/a")
    assert d.rule == "unmatched" and "m1" in d.reason and "denied by default" in d.reason
    d = ask("model", "write", "downloads/x")
    assert d.rule == "model:model-write-downloads" and d.path == "downloads/x"


@pytest.mark.parametrize("op", ["network", "sandbox", "delegate"])
def test_models_get_nothing_else_by_default(op):
    d = ask("model", op, host="pypi.org", target="coder")
    assert d.decision == "deny" and d.rule == "unmatched"


@pytest.mark.parametrize(("attack", "code"), ATTACKS[:: 3])
def test_unsafe_paths_are_denied_even_for_the_system(attack, code):
    for actor in ("model", "user", "system"):
        d = ask(actor, "read", attack)
        assert d.decision == "deny" and d.rule == "path" and d.reason.startswith("unsafe path:"), d


def test_lockdown_is_read_only_for_everyone():
    for actor, op, path in [("model", "write", "downloads/x"), ("user", "write", "uploads/a"),
                            ("user", "delete", "downloads/a"), ("system", "write", "uploads/.versions/x")]:
        d = ask(actor, op, path, locked=True)
        assert d.decision == "deny" and d.rule == "lockdown" and "lockdown" in d.reason
    granted = PermissionPolicy.from_mapping({"overrides": {"m1": [{"operations": ["network", "sandbox", "delegate"],
                                                                    "hosts": ["*"]}]}})
    for op in ("network", "sandbox", "delegate"):
        assert ask("model", op, host="pypi.org", policy=granted).decision == "allow"
        d = ask("model", op, host="pypi.org", policy=granted, locked=True)
        assert d.decision == "deny" and "lockdown" in d.reason
    assert ask("model", "read", "uploads/a", locked=True).decision == "allow"
    assert ask("user", "read", "notes.txt", locked=True).decision == "allow"
    assert ask("model", "read", "notes.txt", locked=True).decision == "deny"


def test_per_model_overrides_extend_restrict_and_ask():
    policy = PermissionPolicy.from_toml("""
        [[overrides.coder]]
        operations = ["network"]
        effect = "ask"
        hosts = ["*"]

        [[overrides.coder]]
        operations = ["sandbox"]

        [[overrides.readonly]]
        operations = ["write", "delete"]
        effect = "deny"
        paths = ["**"]
        name = "no-writes"

        [[overrides.editor]]
        operations = ["write"]
        paths = ["uploads/**"]
    """)
    d = ask("model", "network", host="github.com", policy=policy, model_id="coder")
    assert d.decision == "ask" and d.rule == "override:coder[0]" and "a person must decide" in d.reason
    assert ask("model", "sandbox", policy=policy, model_id="coder").decision == "allow"
    assert ask("model", "sandbox", policy=policy, model_id="other").decision == "deny"
    d = ask("model", "write", "downloads/x", policy=policy, model_id="readonly")
    assert d.decision == "deny" and d.rule == "override:readonly:no-writes"
    assert ask("model", "read", "uploads/a", policy=policy, model_id="readonly").decision == "allow"
    assert ask("model", "write", "uploads/a", policy=policy, model_id="editor").decision == "allow"
    # Fixed rules are not overridable: .versions stays system-only, area folders stay.
    assert ask("model", "write", "uploads/.versions/x", policy=policy, model_id="editor").rule == "system_only"
    assert ask("model", "write", "uploads", policy=policy, model_id="editor").rule == "platform_folder"


def test_capability_grants_and_the_strictest_among_them():
    policy = PermissionPolicy.from_mapping({"capabilities": {
        "code": [{"operations": ["sandbox"]}, {"operations": ["network"], "hosts": ["pypi.org", "*.python.org"]}],
        "security": [{"operations": ["sandbox"], "effect": "ask"}],
        "general": [{"operations": ["delegate"], "targets": ["coder", "reviewer"]}],
    }})
    assert ask("model", "sandbox", policy=policy, caps=("code",)).decision == "allow"
    d = ask("model", "sandbox", policy=policy, caps=("code", "security"))
    assert d.decision == "ask" and d.rule == "capability:security[0]"
    assert ask("model", "sandbox", policy=policy, caps=("general",)).decision == "deny"
    assert ask("model", "network", host="pypi.org", policy=policy, caps=("code",)).decision == "allow"
    assert ask("model", "network", host="PyPI.org.", policy=policy, caps=("code",)).decision == "allow"
    assert ask("model", "network", host="docs.python.org:443", policy=policy, caps=("code",)).decision == "allow"
    assert ask("model", "network", host="python.org", policy=policy, caps=("code",)).decision == "deny"
    assert ask("model", "network", host="evil.com", policy=policy, caps=("code",)).decision == "deny"
    assert ask("model", "delegate", target="coder", policy=policy, caps=("general",)).decision == "allow"
    assert ask("model", "delegate", target="gpt", policy=policy, caps=("general",)).decision == "deny"
    # An override comes before grants.
    both = policy.model_copy(update={"overrides": {"m1": (Rule(operations=("sandbox",), effect="deny"),)}})
    assert ask("model", "sandbox", policy=both, caps=("code",)).rule == "override:m1[0]"


def test_unmatched_requests_can_be_configured_to_ask():
    policy = PermissionPolicy.from_toml("""
        [model]
        unmatched = { network = "ask", write = "ask" }
        [[model.rules]]
        operations = ["read"]
        paths = ["uploads/**"]
    """)
    d = ask("model", "network", host="example.com", policy=policy)
    assert d.decision == "ask" and d.rule == "unmatched"
    assert ask("model", "write", "downloads/x", policy=policy).decision == "ask"  # [model] replaced the defaults
    assert ask("model", "read", "rag/x", policy=policy).decision == "deny"
    assert ask("model", "sandbox", policy=policy).decision == "deny"
    assert ask("model", "write", "uploads/.versions/x", policy=policy).decision == "deny"
    assert ask("model", "network", host="example.com", policy=policy, locked=True).decision == "deny"


def test_malformed_requests_are_denied_not_raised():
    assert ask("model", "read", None).rule == "invalid"
    assert ask("model", "network").rule == "invalid"
    assert ask("model", "network", host="*").rule == "invalid"
    assert ask("model", "network", host="evil.com/path").rule == "invalid"
    with pytest.raises(ValidationError):
        PermissionRequest(actor="model", operation="read", path="x", model_id="../bad")
    with pytest.raises(ValidationError):
        PermissionRequest(actor="root", operation="read", path="x")


@pytest.mark.parametrize("bad", [
    {"model": {"rules": [{"operations": ["write"]}]}},  # file rule without paths
    {"model": {"rules": [{"operations": ["network"]}]}},  # network rule without hosts
    {"model": {"rules": [{"operations": ["read"], "paths": ["../**"]}]}},
    {"model": {"rules": [{"operations": ["read"], "paths": ["/etc/**"]}]}},
    {"model": {"rules": [{"operations": ["read"], "paths": ["downloads/*"]}]}},
    {"model": {"rules": [{"operations": ["network"], "hosts": ["http://x"]}]}},
    {"model": {"rules": [{"operations": ["fly"], "paths": ["**"]}]}},
    {"capabilities": {"poetry": [{"operations": ["sandbox"]}]}},
    {"overrides": {"bad id!": [{"operations": ["sandbox"]}]}},
    {"lockdown": False},
])
def test_bad_policies_are_refused(bad):
    with pytest.raises(ValidationError):
        PermissionPolicy.from_mapping(bad)


def test_policy_round_trips_and_defaults_are_the_shipped_ones():
    assert PermissionPolicy.from_mapping({}) == DEFAULT
    again = PermissionPolicy.model_validate_json(DEFAULT.model_dump_json())
    assert again == DEFAULT
    assert Effect.ASK.value == "ask" and Operation.DELEGATE.value == "delegate"


def test_strictest():
    a, s, d = (ask("model", "read", "uploads/a"), ask("model", "network", host="x.org", policy=PermissionPolicy(
        model={"unmatched": {"network": "ask"}})), ask("model", "read", "notes"))
    assert (a.decision, s.decision, d.decision) == ("allow", "ask", "deny")
    assert strictest(a, s) is s and strictest(s, d, a) is d and strictest(a) is a
