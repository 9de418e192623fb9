"""bwrap hardening, operator caps, review views with control characters escaped, output bounded inside the activity
(real bubblewrap, real Temporal, real PostgreSQL blob store)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys

import pytest

from activities.sandbox import _cgroups
from activities.blobs import BlobStore
from domain.sandbox import Limits, LimitsRefused, Origin, ReviewDecision, SandboxSpec
from hybrid_llm import sandbox_client
from tests.helpers import TEST_APPROVER
from tests.processes import acli
from tests.test_sandbox import root, run, sh  # noqa: F401 - root is a fixture

PROBE = r"""
import ctypes, errno, json, os, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
out = {}
def call(name, *args):
    r = getattr(libc, name)(*args)
    return "ok" if r == 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
out["ptrace"] = call("ptrace", 0, 0, 0, 0)  # PTRACE_TRACEME
out["unshare_user"] = call("unshare", 0x10000000)
out["unshare_net"] = call("unshare", 0x40000000)
out["keyctl"] = "ok" if libc.syscall(250, 0, 0, 0, 0, 0) >= 0 else errno.errorcode.get(ctypes.get_errno())
out["mount"] = call("mount", b"none", b"/work", b"tmpfs", 0, None)
r = subprocess.run(["unshare", "-U", "-r", "true"], capture_output=True)
out["unshare_cmd"] = r.returncode
try:
    with open("/tmp/big", "wb") as f:
        for _ in range(200):
            f.write(b"\0" * (1 << 20))
    out["tmp"] = "filled 200 MiB"
except OSError as e:
    out["tmp"] = e.strerror
os.remove("/tmp/big")
out["visible"] = {p: os.path.exists(p) for p in sys.argv[1:]}
print(json.dumps(out))
"""


async def test_no_userns_seccomp_bounded_tmp_and_nothing_of_the_platform_inside(client, settings, run_worker,
                                                                                scripted_pool, root):  # noqa: F811
    secrets = [sys.prefix, str(settings.state_dir), str(settings.root), str(settings.sandbox_dir), "/root",
               "/var/tmp/hybrid-llm-sandboxes"]
    spec = SandboxSpec(command=("python3", "-I", "probe.py", *secrets), files={"probe.py": PROBE},
                       limits=Limits(memory_mb=128, file_bytes=256 * 1024 * 1024))
    async with run_worker(scripted_pool()):
        out = await run(client, settings, spec)
    assert out.exit_code == 0, out
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["ptrace"] == "EPERM" and seen["keyctl"] == "EPERM"  # seccomp
    assert seen["unshare_user"] in ("EPERM", "ENOSPC", "EUSERS") and seen["unshare_net"] == "EPERM"
    assert seen["mount"] == "EPERM" and seen["unshare_cmd"] != 0
    assert seen["tmp"] == "No space left on device"  # /tmp holds half the memory limit, not the host's RAM
    assert not any(seen["visible"].values()), seen["visible"]


async def test_model_code_is_refused_where_cgroups_cannot_limit_it(client, settings, run_worker, scripted_pool,
                                                                   root, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(_cgroups, "available", lambda root=_cgroups.ROOT: False)
    policy = tmp_path / "policy.toml"
    policy.write_text('[[model.rules]]\noperations = ["sandbox"]\n')
    settings.permissions_file = policy
    async with run_worker(scripted_pool()):
        model = await run(client, settings, SandboxSpec(code="echo ran > ran.txt\n",
                                                        origin=Origin(actor="model", model_id="coder")))
        person = await run(client, settings, sh("echo person"))
    assert model.status == "failed" and "cgroups limit memory, CPU and processes" in model.reason, model
    assert model.exit_code is None and model.files == [] and model.destroyed
    assert person.status == "approved" and person.stdout == "person\n", person  # a person's own command: rlimits


@pytest.mark.parametrize("limits", [dict(memory_mb=16384), dict(pids=4096), dict(wall_s=3600),
                                    dict(output_bytes=64 * 1024 * 1024), dict(cpu_s=3600)])
async def test_limits_above_the_operator_caps_are_refused_not_clamped(client, settings, limits):
    with pytest.raises(LimitsRefused, match=next(iter(limits))):
        await sandbox_client.start(client, settings, SandboxSpec(command=("true",), limits=Limits(**limits)))
    assert await sandbox_client.listing(client, settings) == []  # nothing started


async def test_limits_above_the_caps_cli_exit_2_and_api_422(client, settings, request):
    settings.sandbox_max_memory_mb = 512
    done = await acli(settings, "sandbox", "exec", "--approve", "--memory-mb", "1024", "--", "true",
                      HYBRID_SANDBOX_MAX_MEMORY_MB="512")
    assert done.returncode == 2 and "memory_mb 1024 > 512" in done.stderr, (done.returncode, done.stderr)
    from tests.test_api import api_client

    async with api_client(settings) as api:
        r = await _api(api, "POST", "/v1/sandboxes", request,
                       json={"command": ["true"], "limits": {"memory_mb": 1024}})
    assert r.status_code == 422 and "memory_mb 1024 > 512" in r.text, r.text
    assert await sandbox_client.listing(client, settings) == []


async def _api(api, method: str, url: str, request, **kw):
    """Call the API as the first role it accepts, once the auth fixture exists (the `keys` work); plain before."""
    try:
        keys = request.getfixturevalue("api_keys")
    except pytest.FixtureLookupError:
        return await api.request(method, url, **kw)
    r = None
    for role in ("user", "approver", "operator", "auditor"):
        r = await api.request(method, url, headers={"Authorization": f"Bearer {keys[role][1]}"}, **kw)
        if r.status_code not in (401, 403, 404):  # 404: another user's run (reads are scoped)
            return r
    return r


HIDING = r"printf 'shown\033[8mHIDDEN\033[0m \a\033]0;title\a\302\233x\n'; printf 'err\033[2J\n' >&2"


async def test_review_views_show_control_characters_escaped(client, settings, run_worker, scripted_pool, root,
                                                            request):  # noqa: F811
    async with run_worker(scripted_pool()):
        handle = await sandbox_client.start(client, settings, sh(HIDING))
        while (await sandbox_client.show(client, handle.id)).get("view", {}).get("step") != "reviewing":
            await asyncio.sleep(0.05)
        shown = await acli(settings, "sandbox", "show", handle.id)
        shown_json = await acli(settings, "sandbox", "show", handle.id, "--json")
        from tests.test_api import api_client

        async with api_client(settings) as api:
            r = await _api(api, "GET", f"/v1/sandboxes/{handle.id}", request)
        await sandbox_client.decide(client, handle.id, ReviewDecision(approve=False, by="pytest", principal=TEST_APPROVER))
        await handle.result()
    for text in (shown.stdout, json.loads(shown_json.stdout)["view"]["result"]["stdout"],
                 r.json()["view"]["result"]["stdout"]):
        assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text, text
        assert "\\x1b[8mHIDDEN\\x1b[0m" in text and "\\x07" in text and "\\x9bx" in text, text
    assert "err\\x1b[2J" in shown.stdout


async def test_64_mib_of_output_leaves_history_under_1_mb(client, settings, run_worker, scripted_pool, root,
                                                          engine):  # noqa: F811
    settings.sandbox_max_output_bytes = 64 * 1024 * 1024
    size = 64 * 1024 * 1024
    spec = SandboxSpec(command=("python3", "-c", f"import sys; sys.stdout.write('y' * {size})"),
                       limits=Limits(output_bytes=size, memory_mb=512, wall_s=60))
    async with run_worker(scripted_pool()):
        handle = await sandbox_client.start(client, settings, spec, ReviewDecision(approve=True, principal=TEST_APPROVER,
                                                                                                  by="pytest"))
        out = await handle.result()
    history = await handle.fetch_history()
    serialized = len(history.to_json().encode())
    assert serialized < 1_000_000, serialized
    assert out.exit_code == 0 and out.truncated and len(out.stdout) < 100 * 1024
    full = BlobStore(engine).get(out.stdout_sha256)
    assert len(full) == size and hashlib.sha256(full).hexdigest() == out.stdout_sha256


def test_cgroup_v2_is_used_where_v1_is_not_writable(tmp_path):
    """This host has writable v1 (the real runs above use it); v2 is chosen from the unified hierarchy's files
    when v1 is missing. Checked here on a copy of that file layout: what is written, and what is read back."""
    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (unified / "cgroup.subtree_control").write_text("memory pids cpu\n")
    assert not _cgroups.v1_available(tmp_path) and _cgroups.kind(tmp_path) == "v2"
    group = _cgroups.SandboxCgroup("abc", tmp_path)
    assert isinstance(group, _cgroups.CgroupV2)
    parent = unified / _cgroups.PARENT
    parent.mkdir()
    (parent / "cgroup.subtree_control").write_text("")
    (parent / "abc").mkdir()
    group.create(Limits(memory_mb=64, pids=16, cpu_percent=50))
    d = parent / "abc"
    assert (parent / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert {f: (d / f).read_text() for f in ("memory.max", "memory.swap.max", "pids.max", "cpu.max")} == {
        "memory.max": str(64 << 20), "memory.swap.max": "0", "pids.max": "16", "cpu.max": "50000 100000"}
    assert group.procs_files() == [str(d / "cgroup.procs")]
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (d / "pids.events").write_text("max 0\n")
    assert group.events() == ["memory"]
    assert _cgroups.existing(tmp_path) == {"abc"}
    (unified / "cgroup.subtree_control").unlink()  # cannot be delegated to us: v2 is not used
    assert _cgroups.v2_root(tmp_path) is None
    (unified / "cgroup.subtree_control").write_text("io\n")  # not yet enabled: enabled once, then used
    assert _cgroups.v2_root(tmp_path) == unified
    assert set((unified / "cgroup.subtree_control").read_text().split()) == {"+memory", "+pids", "+cpu"}
    (unified / "cgroup.controllers").write_text("cpuset io\n")  # not offered: nothing to limit with
    assert not _cgroups.available(tmp_path)
