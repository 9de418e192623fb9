"""The microVM backend (QEMU microvm, own kernel, TCG): the same isolation checks, kept few (each boot ~1.5-2 s)."""

from __future__ import annotations

import os
import time

import pytest

from activities.sandbox._microvm import unavailable_reason
from domain.sandbox import Backend, Limits, Origin, SandboxSpec
from hybrid_llm.sandbox_worker import microvm_dir
from hybrid_llm.settings import Settings
from tests.test_sandbox import root, run  # noqa: F401 - root is a fixture

_WHY = unavailable_reason(microvm_dir(Settings()))
pytestmark = pytest.mark.skipif(_WHY is not None, reason=f"microvm backend unavailable: {_WHY} "
                                "(CI installs qemu-system-x86; scripts/setup.sh builds the assets)")


def vm(script: str, **limits) -> SandboxSpec:
    return SandboxSpec(command=("/bin/sh", "-c", script), backend=Backend.MICROVM, limits=Limits(**limits))


async def test_microvm_isolation_files_in_and_out(client, settings, run_worker, scripted_pool, root):
    script = ("cat in.txt; echo made > out.txt; id -u; mkdir /escape 2>/dev/null || echo RO-ROOT; "
              "ls /sys/class/net; uname -r")
    spec = vm(script).model_copy(update={"files": {"in.txt": "hello from the host\n"}})
    async with run_worker(scripted_pool()):
        out = await run(client, settings, spec)
    assert out.status == "approved" and out.exit_code == 0 and out.destroyed, out
    lines = out.stdout.split()
    assert out.stdout.startswith("hello from the host\n") and "65534" in lines and "RO-ROOT" in lines
    assert lines[-2] == "lo"  # only loopback: no network device
    assert lines[-1].endswith("-cloud-amd64") and lines[-1] != os.uname().release  # its own (Debian cloud) kernel
    assert "eth0" not in lines
    assert [f.path for f in out.files] == ["out.txt"]
    assert (root / "downloads" / f"sandbox-{out.sandbox_id}" / "out.txt").read_text() == "made\n"


async def test_microvm_contains_a_loop_a_flood_and_a_fork_bomb(client, settings, run_worker, scripted_pool, root):
    started = time.monotonic()
    async with run_worker(scripted_pool()):
        loop = await run(client, settings, vm("while :; do :; done", wall_s=2))
        flood = await run(client, settings, SandboxSpec(command=("yes",), backend=Backend.MICROVM,
                                                        limits=Limits(output_bytes=64 * 1024)))
        bomb = await run(client, settings, vm("for i in $(seq 200); do sleep 2 & done; wait; echo survived",
                                              pids=16, wall_s=8))
    assert time.monotonic() - started < 60
    assert loop.stopped == "timeout" and loop.exit_code is None and loop.destroyed
    assert flood.stopped == "output_limit" and len(flood.stdout) <= 64 * 1024
    assert "pids" in bomb.limits_hit and bomb.stopped == "pids" and bomb.destroyed  # the shell gave up, the VM held


async def test_cloud_model_code_goes_to_the_microvm(client, settings, run_worker, scripted_pool, root, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[[model.rules]]\noperations = ["sandbox"]\n')
    settings.permissions_file = policy
    spec = SandboxSpec(code="echo from-the-cloud\n", origin=Origin(actor="model", model_id="gpt", local=False))
    async with run_worker(scripted_pool()):
        out = await run(client, settings, spec)
    assert out.backend == Backend.MICROVM and "cloud model" in out.isolation_reason
    assert out.stdout == "from-the-cloud\n" and out.status == "approved"


def _qemu_processes(marker: str) -> list[dict]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            status = open(f"/proc/{pid}/status").read()
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"qemu-system-x86_64") and any(marker.encode() in a for a in cmdline):
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            found.append({"args": [a.decode() for a in cmdline], "uid": fields["Uid"].split(),
                          "seccomp": fields.get("Seccomp", "").strip(), "nnp": fields.get("NoNewPrivs", "").strip(),
                          "capeff": fields["CapEff"].strip()})
    return found


async def test_qemu_runs_unprivileged_in_its_own_seccomp_sandbox_without_a_network_device(
        client, settings, run_worker, scripted_pool, root):  # noqa: F811
    import asyncio

    from hybrid_llm import sandbox_client
    from tests.test_sandbox import APPROVE

    async with run_worker(scripted_pool()):
        handle = await sandbox_client.start(client, settings, vm("sleep 6; echo done", wall_s=20), APPROVE)
        sid = handle.id.removeprefix("sandbox-")
        # QEMU loads its filter during start-up, a moment after exec: sample until it shows (or the VM is gone).
        seen: list[list[dict]] = []
        for _ in range(300):
            if found := _qemu_processes(sid):
                seen.append(found)
                if found[0]["seccomp"] == "2":
                    break
            await asyncio.sleep(0.05)
        out = await handle.result()
    assert out.stdout == "done\n", out
    assert seen and all(len(found) == 1 for found in seen), seen
    for (qemu,) in seen:  # from its first instruction on: never root, no capabilities, no new privileges
        assert qemu["uid"] == ["65534"] * 4 and qemu["capeff"] == "0000000000000000" and qemu["nnp"] == "1"
    qemu = seen[-1][0]
    assert qemu["seccomp"] == "2"  # QEMU's own filter is loaded
    args = qemu["args"]
    assert args[args.index("-sandbox") + 1] == "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
    assert args[args.index("-nic") + 1] == "none" and "-netdev" not in args and "-nodefaults" in args


def test_assets_qemu_cannot_read_make_the_backend_unavailable():
    """QEMU runs as uid 65534: assets it cannot reach or read count as missing, with the reason."""
    import shutil
    import uuid
    from pathlib import Path

    base = Path("/var/tmp") / f"hybrid-assets-{uuid.uuid4().hex[:8]}"
    hidden = base / "private" / "microvm"
    hidden.mkdir(parents=True)
    try:
        for name in ("vmlinuz", "initramfs.cpio.gz"):
            shutil.copy(microvm_dir(Settings()) / name, hidden / name)
            os.chmod(hidden / name, 0o644)
        os.chmod(base, 0o755)
        os.chmod(hidden, 0o755)
        os.chmod(hidden.parent, 0o700)
        assert f"{hidden.parent} is not searchable" in (unavailable_reason(hidden) or "")
        os.chmod(hidden.parent, 0o755)
        os.chmod(hidden / "vmlinuz", 0o600)
        assert "cannot read" in (unavailable_reason(hidden) or "")
        os.chmod(hidden / "vmlinuz", 0o644)
        assert unavailable_reason(hidden) is None
    finally:
        shutil.rmtree(base)
