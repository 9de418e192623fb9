"""Paths judged against a real platform root: symlinks resolved, escapes refused, nothing touched; and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from activities.filesystem import PathRefused, PlatformFiles
from domain.paths import UnsafePath
from domain.permissions import PermissionPolicy, PermissionRequest
from tests.test_paths import ATTACKS

POLICY = PermissionPolicy()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A platform root with a few files and a hostile set of symlinks, and a secret outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    r = tmp_path / "root"
    for d in ("downloads/out", "uploads/.versions", "uploads/docs", "rag"):
        (r / d).mkdir(parents=True)
    (r / "downloads/real.txt").write_text("real")
    (r / "uploads/a.txt").write_text("a")
    (r / "uploads/.versions/abc").write_text("old a")
    (r / "rag/manifest.json").write_text("{}")
    (r / "notes.txt").write_text("notes")
    links = {
        "downloads/etc": "/etc",
        "downloads/up": "../..",
        "downloads/parent": "..",
        "downloads/secret": str(outside / "secret.txt"),
        "downloads/rel_secret": "../../outside/secret.txt",
        "downloads/versions": "../uploads/.versions",
        "downloads/uploads_a": "../uploads/a.txt",
        "downloads/ragdir": "../rag",
        "downloads/chain1": "chain2",
        "downloads/chain2": "chain3",
        "downloads/chain3": "/etc/passwd",
        "downloads/good1": "good2",
        "downloads/good2": "real.txt",
        "downloads/abs_inside": str(r / "downloads/real.txt"),
        "downloads/loop1": "loop2",
        "downloads/loop2": "loop1",
        "downloads/self": "self",
        "downloads/dangling_out": str(outside / "created-by-attacker.txt"),
        "downloads/dangling_in": "future.txt",
        "downloads/dangling_dotdot": "missing/../../../outside/secret.txt",
        "uploads/link_to_version": ".versions/abc",
        "uploads/docs/back": "../../downloads/real.txt",
        "rag/outside_dir": str(outside),
    }
    for name, target in links.items():
        (r / name).symlink_to(target)
    os.mkfifo(r / "downloads/fifo")
    return r


def snapshot(top: Path) -> dict[str, tuple]:
    """Everything observable about a tree: names, kinds, link targets, sizes, mtimes and contents."""
    seen: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            if p.is_symlink():
                seen[str(p)] = ("link", os.readlink(p), st.st_mtime_ns)
            elif p.is_file():
                seen[str(p)] = ("file", st.st_size, st.st_mtime_ns, p.read_bytes())
            else:
                seen[str(p)] = ("other", st.st_mode, st.st_mtime_ns)
    seen[str(top)] = ("dir", top.stat().st_mtime_ns)
    return seen


def check(root: Path, actor: str, op: str, path: str, *, locked: bool = False, **kw):
    return PlatformFiles(root).check(actor, op, path, POLICY, locked, model_id="m1" if actor == "model" else None,
                                     **kw)


# (actor, op, path, decision, rule prefix)
SYMLINK_CASES = [
    ("model", "read", "downloads/etc/passwd", "deny", "resolve:outside_root"),
    ("model", "write", "downloads/etc/cron.d/x", "deny", "resolve:outside_root"),
    ("user", "read", "downloads/etc/passwd", "deny", "resolve:outside_root"),
    ("model", "read", "downloads/up/outside/secret.txt", "deny", "resolve:outside_root"),
    ("model", "read", "downloads/secret", "deny", "resolve:outside_root"),
    ("model", "write", "downloads/rel_secret", "deny", "resolve:outside_root"),
    ("model", "read", "downloads/parent/uploads/a.txt", "deny", "resolve:zone"),
    ("model", "write", "downloads/parent/notes.txt", "deny", "resolve:zone"),
    ("model", "write", "downloads/versions/abc", "deny", "resolve:zone"),
    ("model", "delete", "downloads/versions/abc", "deny", "resolve:zone"),
    ("model", "write", "downloads/versions/new", "deny", "resolve:zone"),
    ("user", "read", "downloads/versions/abc", "deny", "resolve:zone"),
    ("model", "write", "downloads/uploads_a", "deny", "resolve:zone"),
    ("model", "write", "downloads/ragdir/x", "deny", "resolve:zone"),
    ("model", "read", "downloads/chain1", "deny", "resolve:outside_root"),
    ("model", "read", "downloads/loop1", "deny", "resolve:loop"),
    ("model", "write", "downloads/self/x", "deny", "resolve:loop"),
    ("model", "write", "downloads/dangling_out", "deny", "resolve:outside_root"),
    ("model", "write", "downloads/dangling_dotdot", "deny", "resolve:"),
    ("user", "write", "uploads/link_to_version", "deny", "resolve:zone"),
    ("model", "read", "uploads/link_to_version", "deny", "resolve:zone"),
    ("model", "read", "uploads/docs/back", "deny", "resolve:zone"),
    ("model", "read", "rag/outside_dir/secret.txt", "deny", "resolve:outside_root"),
    ("model", "read", "downloads/real.txt/x", "deny", "resolve:not_a_directory"),
    ("model", "read", "downloads/fifo", "deny", "resolve:special"),
    # links that stay where they claim to be
    ("model", "read", "downloads/good1", "allow", "model:"),
    ("model", "write", "downloads/good1", "allow", "model:"),
    ("model", "read", "downloads/abs_inside", "allow", "model:"),
    ("model", "write", "downloads/dangling_in", "allow", "model:"),
    # ordinary files, existing or not
    ("model", "read", "uploads/a.txt", "allow", "model:"),
    ("model", "read", "uploads/.versions/abc", "allow", "model:"),
    ("model", "write", "downloads/out/x.txt", "allow", "model:"),
    ("model", "write", "downloads/new/deep/x.txt", "allow", "model:"),
    ("model", "write", "downloads", "deny", "platform_folder"),
    ("model", "write", "uploads/a.txt", "deny", "unmatched"),
    ("model", "delete", "rag/manifest.json", "deny", "unmatched"),
    ("model", "write", "uploads/.versions/x", "deny", "system_only"),
    ("system", "write", "uploads/.versions/x", "allow", "system:"),
    ("user", "write", "uploads/a.txt", "allow", "user:"),
    ("user", "read", "notes.txt", "allow", "user:"),
]


@pytest.mark.parametrize(("actor", "op", "path", "expected", "rule"), SYMLINK_CASES,
                         ids=[f"{a}-{o}-{p}" for a, o, p, _, _ in SYMLINK_CASES])
def test_symlinks_are_judged_by_where_they_lead(root, actor, op, path, expected, rule):
    before = snapshot(root.parent)
    d = check(root, actor, op, path)
    assert d.decision == expected and d.rule.startswith(rule), d
    assert snapshot(root.parent) == before


def test_resolve_reports_where_a_path_leads(root):
    files = PlatformFiles(root)
    r = files.resolve("downloads/good1")
    assert r.parts == ("downloads", "real.txt") and r.kind == "file" and r.via_symlink and r.missing == 0
    r = files.resolve("downloads/new/deep/x.txt")
    assert r.kind == "missing" and r.missing == 3 and r.real == root.resolve() / "downloads/new/deep/x.txt"
    assert not (root / "downloads/new").exists()
    assert files.resolve("uploads").kind == "directory"
    with pytest.raises(PathRefused) as e:
        files.resolve("downloads/versions/abc")
    assert e.value.code == "zone" and "uploads/.versions" in e.value.reason
    with pytest.raises(UnsafePath):
        files.resolve("../etc/passwd")


def test_a_symlinked_root_and_an_area_that_leaves_it(tmp_path, root):
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    assert check(alias, "model", "read", "uploads/a.txt").decision == "allow"
    moved = tmp_path / "moved"
    (moved / "uploads").mkdir(parents=True)
    (moved / "uploads" / "a.txt").write_text("a")
    other = tmp_path / "other-root"
    other.mkdir()
    (other / "uploads").symlink_to(moved / "uploads")
    d = check(other, "model", "read", "uploads/a.txt")
    assert d.decision == "deny" and d.rule == "resolve:outside_root"


def test_missing_root_is_a_deny(tmp_path):
    d = check(tmp_path / "nope", "model", "read", "uploads/a.txt")
    assert d.decision == "deny" and d.rule == "resolve:root_missing"


def test_lockdown_keeps_reads_and_denies_writes(root):
    assert check(root, "model", "read", "uploads/a.txt", locked=True).decision == "allow"
    for actor, op, path in [("model", "write", "downloads/x"), ("user", "delete", "uploads/a.txt"),
                            ("system", "write", "uploads/.versions/x")]:
        d = check(root, actor, op, path, locked=True)
        assert d.decision == "deny" and "lockdown" in d.reason


def test_attacks_are_denied_against_a_real_root(root):
    before = snapshot(root.parent)
    for attack, _ in ATTACKS:
        for actor in ("model", "user"):
            assert check(root, actor, "read", attack).decision == "deny", attack
    assert snapshot(root.parent) == before


def test_check_request_passes_non_file_operations_to_the_policy(root):
    files = PlatformFiles(root)
    d = files.check_request(PermissionRequest(actor="model", operation="network", host="pypi.org", model_id="m1"),
                            POLICY, locked=False)
    assert d.decision == "deny" and d.rule == "unmatched"
    assert files.check("model", "read", 42, POLICY, False).decision == "deny"  # type: ignore[arg-type]


# The CLI, as a person or a script runs it ----------------------------------------------------------------------


def files_check(root: Path | str, *args: str, lines: list[str] | bytes) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_")}
    data = lines if isinstance(lines, bytes) else "".join(line + "\n" for line in lines).encode()
    return subprocess.run([sys.executable, "-m", "hybrid_llm.cli.main", "files", "check", "--root", str(root), *args],
                          input=data, capture_output=True, cwd=REPO, env=env, timeout=60)


def answers(proc: subprocess.CompletedProcess) -> list[dict]:
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    for o in out:
        assert o["decision"] in ("allow", "deny") and o["reason"], o
    return out


def test_cli_checks_json_lines_and_touches_nothing(root):
    before = snapshot(root.parent)
    paths = ["downloads/out/x.txt", "downloads/new/dir/y.txt", "downloads", "uploads/a", "uploads/.versions/x",
             "downloads/etc/passwd", "downloads/versions/abc", "downloads/loop1", "../../etc/passwd",
             "downloads/%2e%2e/x", "downloads/good1"]
    out = answers(files_check(root, "--actor", "model", "--op", "write", "--model", "m1",
                              lines=[json.dumps({"path": p}) for p in paths]))
    assert [o["decision"] for o in out] == ["allow", "allow", "deny", "deny", "deny", "deny", "deny", "deny", "deny",
                                            "deny", "allow"]
    assert "outside the platform root" in out[5]["reason"] and "uploads/.versions" in out[6]["reason"]
    out = answers(files_check(root, "--actor", "user", "--op", "write",
                              lines=[json.dumps({"path": p}) for p in ("uploads/a", "uploads/.versions/x")]))
    assert [o["decision"] for o in out] == ["allow", "deny"]
    out = answers(files_check(root, "--actor", "model", "--op", "read",
                              lines=[json.dumps({"path": p}) for p in ("uploads/a.txt", "notes.txt", "rag/x")]))
    assert [o["decision"] for o in out] == ["allow", "deny", "allow"]
    assert snapshot(root.parent) == before


def test_cli_denies_every_attack(root):
    before = snapshot(root.parent)
    out = answers(files_check(root, "--actor", "user", "--op", "read",
                              lines=[json.dumps({"path": a}) for a, _ in ATTACKS]))
    assert len(out) == len(ATTACKS) and all(o["decision"] == "deny" for o in out)
    assert all(o["rule"] == "path" and o["reason"].startswith("unsafe path: ") for o in out), out
    assert snapshot(root.parent) == before


def test_cli_bad_lines_are_denied_and_the_stream_goes_on(root):
    raw = b"\n".join([b"not json", b"[1, 2]", b'{"file": "uploads/a"}', b'{"path": 3}', b'{"path": null}', b"",
                      b'{"path": "uploads/\xff"}', b"{" * 100_000, b'{"path": "uploads/a.txt"}']) + b"\n"
    out = answers(files_check(root, "--actor", "model", "--op", "read", lines=raw))
    assert len(out) == 9
    assert all(o["decision"] == "deny" and o["reason"].startswith("invalid input: ") for o in out[:8]), out
    assert out[8]["decision"] == "allow"


def test_cli_lockdown_and_policy_file(root, tmp_path):
    out = answers(files_check(root, "--actor", "model", "--op", "write", "--locked",
                              lines=[json.dumps({"path": "downloads/x"})]))
    assert out[0]["decision"] == "deny" and "lockdown" in out[0]["reason"]
    policy = tmp_path / "policy.toml"
    policy.write_text('[[overrides.editor]]\noperations = ["write"]\npaths = ["uploads/**"]\n')
    lines = [json.dumps({"path": "uploads/a.txt"})]
    assert answers(files_check(root, "--actor", "model", "--op", "write", "--model", "editor", "--policy",
                               str(policy), lines=lines))[0]["decision"] == "allow"
    assert answers(files_check(root, "--actor", "model", "--op", "write", "--model", "other", "--policy",
                               str(policy), lines=lines))[0]["decision"] == "deny"


@pytest.mark.parametrize(("args", "message"), [
    (("--root", "/definitely/not/here"), "does not exist"),
    (("--policy", "/definitely/not/here.toml"), "cannot read policy file"),
    (("--model", "../x"), "invalid model id"),
    (("--capability", "poetry"), "known capabilities"),
])
def test_cli_clear_errors(root, args, message):
    proc = files_check(root, *args, lines=[json.dumps({"path": "uploads/a"})])
    assert proc.returncode == 2, proc
    assert message in proc.stderr.decode() and "Traceback" not in proc.stderr.decode()
    assert proc.stdout == b""


def test_cli_bad_policy_file_is_a_clear_error(root, tmp_path):
    for text in ("not toml [", '[[model.rules]]\noperations = ["write"]\n', '[[model.rules]]\noperations = '
                 '["read"]\npaths = ["../**"]\n'):
        policy = tmp_path / "p.toml"
        policy.write_text(text)
        proc = files_check(root, "--policy", str(policy), lines=[])
        assert proc.returncode == 2 and "invalid policy file" in proc.stderr.decode(), proc


def test_cli_stays_light():
    code = ("import sys; import hybrid_llm.cli.main as m; m._register(); import hybrid_llm.cli.files; "
            "print(sorted({k.split('.')[0] for k in sys.modules} & {'torch', 'litellm', 'llama_cpp', "
            "'sentence_transformers'}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
