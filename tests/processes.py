"""Run platform processes (the worker, the CLI) as real subprocesses for tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from temporalio.client import Client

from hybrid_llm.settings import Settings
from hybrid_llm.temporal import has_workers

REPO = Path(__file__).resolve().parents[1]


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_")}
    env.update({
        "HYBRID_STATE_DIR": str(settings.state_dir),
        "HYBRID_TEMPORAL_ADDRESS": settings.temporal_target,
        "HYBRID_TASK_QUEUE": settings.task_queue,
        "HF_HUB_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    })
    if settings.models_file:
        env["HYBRID_MODELS_FILE"] = str(settings.models_file)
    if settings.database_url:
        env["HYBRID_DATABASE_URL"] = settings.database_url
    if settings.codec_keys_file:
        env["HYBRID_CODEC_KEYS_FILE"] = str(settings.codec_keys_file)
    env.update(extra)
    return env


def write_registry(path: Path, *entries: str) -> Path:
    path.write_text("\n".join(entries))
    return path


def scripted_entry(model_id: str, **options) -> str:
    opts = ", ".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in options.items())
    return (f'[[models]]\nid = "{model_id}"\nprovider = "scripted"\ncapabilities = ["general", "code", "security"]\n'
            f"local = true\nmax_concurrency = 32\noptions = {{ {opts} }}\n")


def start_worker(settings: Settings, log: Path, **extra_env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "worker"], cwd=REPO, env=env_for(settings, **extra_env),
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


async def wait_for_poller(client: Client, settings: Settings, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"worker exited with {proc.returncode}"
        if await has_workers(client, settings.temporal_namespace, settings.task_queue):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("worker did not start polling")


def cli(settings: Settings, *args: str, stdin: str | None = None, timeout: float = 120, **env: str):
    return subprocess.run([sys.executable, "-m", "hybrid_llm.cli.main", *args], cwd=REPO, input=stdin,
                          env=env_for(settings, **env), capture_output=True, text=True, timeout=timeout)


async def acli(settings: Settings, *args: str, stdin: str | None = None, timeout: float = 120, **env: str):
    """Run the CLI without blocking the event loop (an in-process worker keeps serving meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hybrid_llm.cli.main", *args, cwd=REPO, env=env_for(settings, **env),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), timeout)
    return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())
