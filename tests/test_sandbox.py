"""SandboxWorkflow with the real namespace backend (bubblewrap, cgroups), real Temporal, PostgreSQL and a real root."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

from activities.sandbox import _cgroups
from domain.lockdown import Trigger
from domain.sandbox import Limits, Origin, ReviewDecision, SandboxSpec
from hybrid_llm import lockdown_client, sandbox_client
from hybrid_llm.sandbox_worker import sandbox_dir
from hybrid_llm.identity import local_principal
from tests.helpers import TEST_APPROVER
from tests.processes import acli, start_worker, wait_for_poller

APPROVE = ReviewDecision(approve=True, by="pytest", principal=TEST_APPROVER)


@pytest.fixture
def root(settings, tmp_path):
    for name in ("downloads", "uploads", "rag"):
        (settings.root / name).mkdir(parents=True, exist_ok=True)
    base = Path("/var/tmp/hybrid-llm-sandboxes") / f"test-{tmp_path.name}-{os.getpid()}"
    settings.sandbox_dir = base
    yield settings.root
    left = sorted(p.name for p in base.iterdir()) if base.exists() else []
    if base.exists():
        base.rmdir() if not left else None
    assert not left, f"sandbox(es) left behind: {left}"


def sh(script: str, **limits) -> SandboxSpec:
    return SandboxSpec(command=("/bin/sh", "-c", script), limits=Limits(**limits))


async def run(client, settings, spec: SandboxSpec, approve: ReviewDecision | None = APPROVE):
    return await (await sandbox_client.start(client, settings, spec, approve)).result()


async def test_isolation_no_network_no_writes_outside_and_a_clean_destroy(client, settings, run_worker,
                                                                          scripted_pool, root):
    marker = Path("/tmp") / f"sandbox-escape-{os.getpid()}"
    code = f"""
import os, socket, sys
open({str(marker)!r}, "w").write("x")  # the sandbox's own /tmp: a private tmpfs, gone with it
for target in ("/usr/escape", "/etc/escape", "/work/../escape", "/home/escape"):
    try:
        open(target, "w").write("x")
        print("WROTE", target)
    except OSError as e:
        print("refused", target, e.strerror, file=sys.stderr)
open("result.txt", "w").write("ok\\n")
print(os.getuid())
try:
    socket.create_connection(("1.1.1.1", 80), timeout=2)
    print("CONNECTED")
except OSError as e:
    print("NO-NETWORK", e, file=sys.stderr)
print(open("/proc/net/dev").read().splitlines()[-1].split(":")[0].strip())
"""
    async with run_worker(scripted_pool()):
        out = await run(client, settings, SandboxSpec(code=code, language="python"))
    assert out.status == "approved" and out.exit_code == 0 and out.destroyed, out
    assert "WROTE" not in out.stdout and "CONNECTED" not in out.stdout
    assert "NO-NETWORK" in out.stderr and "Network is unreachable" in out.stderr
    assert out.stdout.split() == ["65534", "lo"]  # an unprivileged uid; a loopback only
    assert out.stderr.count("refused") == 4 and "Read-only file system" in out.stderr
    assert not marker.exists() and not Path("/usr/escape").exists() and not Path("/etc/escape").exists()
    assert [d.path for d in out.delivered] == [f"downloads/sandbox-{out.sandbox_id}/result.txt"]
    assert (root / "downloads" / f"sandbox-{out.sandbox_id}" / "result.txt").read_text() == "ok\n"
    assert [s.split(":")[0] for s in out.steps] == ["created", "configured", "executing", "reviewing", "approved",
                                                    "delivered", "destroyed"]
    assert not (sandbox_dir(settings) / out.sandbox_id).exists()


# Every process forks again and again (the classic shell one-liner is stopped earlier, by the guardrails).
FORK_BOMB = """
import os, time
me = os.getpid()
refused = 0
for _ in range(200):
    try:
        os.fork()
    except OSError:
        refused += 1
time.sleep(0.5)
if os.getpid() == me:
    print("survived", refused > 0)
"""


@pytest.mark.parametrize("name, spec, stopped, hit", [
    ("fork bomb", SandboxSpec(code=FORK_BOMB, language="python", limits=Limits(pids=32, wall_s=8)), None, "pids"),
    ("memory hog", SandboxSpec(code="x = []\nwhile True:\n    x.append(bytearray(10**7))\n", language="python",
                               limits=Limits(memory_mb=64)), "memory", "memory"),
    ("endless loop", sh("while :; do :; done", wall_s=1.5), "timeout", "wall_clock"),
    ("flood of output", SandboxSpec(command=("yes",), limits=Limits(output_bytes=64 * 1024)), "output_limit",
     "output"),
])
async def test_runaway_code_is_contained_and_reported(client, settings, run_worker, scripted_pool, root, name, spec,
                                                      stopped, hit):
    started = time.monotonic()
    async with run_worker(scripted_pool()):
        out = await run(client, settings, spec)
    assert time.monotonic() - started < 20, name
    assert out.status == "approved" and out.destroyed, out
    assert out.stopped == stopped, (name, out)
    assert hit in out.limits_hit, (name, out.limits_hit)
    if name == "flood of output":
        assert len(out.stdout) <= 64 * 1024 and out.truncated
    if name == "fork bomb":
        assert "survived True" in out.stdout  # the parent kept working; only new processes were refused


async def test_rejection_delivers_nothing_and_approval_delivers_only_to_downloads(client, settings, run_worker,
                                                                                 scripted_pool, root):
    spec = sh("echo secret > a.txt; mkdir -p sub; echo b > sub/b.txt; ln -s /etc/passwd link")
    async with run_worker(scripted_pool()):
        handle = await sandbox_client.start(client, settings, spec)
        while not (await sandbox_client.show(client, handle.id)).get("view", {}).get("step") == "reviewing":
            await asyncio.sleep(0.05)
        view = (await sandbox_client.show(client, handle.id))["view"]
        assert sorted(f["path"] for f in view["result"]["files"]) == ["a.txt", "sub/b.txt"]  # no symlink
        listed = await acli(settings, "sandbox", "list", "--json")
        assert handle.id in listed.stdout and '"awaiting_review": true' in listed.stdout, listed.stderr
        rejected = await acli(settings, "sandbox", "reject", handle.id, "--note", "no thanks")
        assert rejected.returncode == 0, rejected.stderr
        out = await handle.result()

        handle2 = await sandbox_client.start(client, settings, spec)
        while (await sandbox_client.show(client, handle2.id)).get("view", {}).get("step") != "reviewing":
            await asyncio.sleep(0.05)
        shown = await acli(settings, "sandbox", "show", handle2.id)
        assert "a.txt" in shown.stdout and "echo secret" in shown.stdout, shown.stderr
        assert (await acli(settings, "sandbox", "approve", handle2.id)).returncode == 0
        ok = await handle2.result()
    assert out.status == "rejected" and out.delivered == [] and out.destroyed
    assert not (root / "downloads" / f"sandbox-{out.sandbox_id}").exists()
    assert ok.status == "approved" and ok.decided_by == local_principal(settings).label
    delivered = root / "downloads" / f"sandbox-{ok.sandbox_id}"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == [
        f"downloads/sandbox-{ok.sandbox_id}/a.txt", f"downloads/sandbox-{ok.sandbox_id}/sub/b.txt"]
    assert (delivered / "a.txt").read_text() == "secret\n"


async def test_a_critical_command_locks_down_and_never_runs(client, settings, run_worker, scripted_pool, root,
                                                           lockdown_secret):
    # A model's proposal: a person's own code is contained instead (tests/test_guardrails_consequence.py).
    model = Origin(actor="model", model_id="coder", local=True, name="model:coder")
    async with run_worker(scripted_pool()):
        out = await run(client, settings, SandboxSpec(command=("rm", "-rf", "/"), origin=model))
        state = await lockdown_client.current(client, settings)
        await lockdown_client.release(client, settings, lockdown_secret, actor="pytest")
    assert out.status == "blocked" and out.exit_code is None and "lockdown engaged" in out.reason
    assert state.locked and state.trigger == Trigger.SECURITY_ALERT
    assert out.steps == [out.steps[0]] and out.steps[0].startswith("blocked")  # nothing was created


async def test_network_needs_an_explicit_grant(client, settings, run_worker, scripted_pool, root, tmp_path):
    spec = SandboxSpec(command=("/bin/sh", "-c", 'cat /proc/net/dev | tail -n +3 | wc -l; echo "${HTTPS_PROXY:-none}"'),
                       network_hosts=("example.com",), origin=Origin(actor="model", model_id="coder"))
    policy = tmp_path / "policy.toml"
    policy.write_text('[[model.rules]]\noperations = ["sandbox"]\n')
    settings.permissions_file = policy
    async with run_worker(scripted_pool()):
        denied = await run(client, settings, spec)
    policy.write_text('[[model.rules]]\noperations = ["sandbox"]\n[[model.rules]]\noperations = ["network"]\n'
                      'hosts = ["example.com"]\n')
    async with run_worker(scripted_pool()):
        granted = await run(client, settings, spec)
    assert denied.status == "approved" and not denied.network and denied.stdout.split() == ["1", "none"]  # lo only
    # granted: still its own namespace with only its loopback; the way out is the egress proxy
    assert granted.network and granted.stdout.split() == ["1", "http://127.0.0.1:3128"], granted


async def test_destroy_after_the_worker_is_killed_mid_run(client, settings, root, tmp_path, monkeypatch):
    import tests.processes as procs

    settings_env = settings.model_copy()
    log = tmp_path / "worker.log"
    env_for = procs.env_for
    monkeypatch.setattr(procs, "env_for", lambda s, **kw: env_for(s, HYBRID_SANDBOX_DIR=str(settings.sandbox_dir),
                                                                      **kw))
    try:
        worker = start_worker(settings_env, log)
        await wait_for_poller(client, settings, worker)
        spec = sh("echo started > mark; sleep 60", wall_s=90)
        inp = sandbox_client.sandbox_input(settings, spec, APPROVE)
        inp.heartbeat_timeout_s = 2
        from workflows.sandbox import SandboxWorkflow

        handle = await client.start_workflow(SandboxWorkflow.run, inp, id=f"sandbox-{inp.sandbox_id}",
                                             task_queue=settings.task_queue)
        work = sandbox_dir(settings) / inp.sandbox_id / "work"
        deadline = time.monotonic() + 20
        while not (work / "mark").exists():
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        worker = start_worker(settings_env, log)
        out = await asyncio.wait_for(handle.result(), 30)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(10)
    assert out.status == "failed" and out.destroyed and "did not complete" in out.reason, out
    assert not (sandbox_dir(settings) / inp.sandbox_id).exists()
    assert inp.sandbox_id not in _cgroups.existing()


async def test_the_orphan_sweep_destroys_sandboxes_of_closed_workflows(client, settings, root):
    from activities.sandbox import sweep_orphans
    from activities.sandbox._workspace import Workspace

    base = sandbox_dir(settings)
    Workspace(base, "orphan1").create("sandbox-no-such-workflow", "namespace")
    assert await sweep_orphans(client, base) == ["orphan1"]
    assert not (base / "orphan1").exists()


async def test_sandbox_exec_cli_json(client, settings, run_worker, scripted_pool, root):
    async with run_worker(scripted_pool()):
        done = await acli(settings, "sandbox", "exec", "--approve", "--json", "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                          HYBRID_SANDBOX_DIR=str(settings.sandbox_dir))
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout.strip().splitlines()[-1])
    assert {k: data[k] for k in ("exit_code", "stdout", "stderr", "status")} == {
        "exit_code": 3, "stdout": "out\n", "stderr": "err\n", "status": "approved"}
    assert data["workflow_id"].startswith("sandbox-")
