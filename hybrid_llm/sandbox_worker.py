"""Worker-side wiring of the sandboxes: where they live, the microVM assets, the orphan sweep at start."""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path

from temporalio.client import Client

from activities.filesystem import PlatformFiles
from activities.lockdown_gate import LockdownGate
from activities.lockdown_store import LockdownStore
from activities.sandbox import SandboxActivities, sweep_orphans
from domain.permissions import PermissionPolicy
from hybrid_llm.settings import Settings

log = logging.getLogger("hybrid_llm.sandbox")


def sandbox_dir(settings: Settings) -> Path:
    """Default: /var/tmp/hybrid-llm-sandboxes/<deployment>: the sandbox's uid must be able to reach its work folder
    (the state dir often sits in a 0700 home). The deployment part keeps separate state dirs apart."""
    if settings.sandbox_dir is not None:
        return settings.sandbox_dir.expanduser().resolve()
    deployment = hashlib.sha256(f"{settings.state_dir}:{settings.task_queue}".encode()).hexdigest()[:12]
    return Path("/var/tmp/hybrid-llm-sandboxes") / deployment


def microvm_dir(settings: Settings) -> Path:
    """Default: the venv's share/ folder, where scripts/build_microvm_assets.sh puts the kernel and initramfs."""
    return (settings.microvm_dir or Path(sys.prefix) / "share" / "hybrid-llm" / "microvm").expanduser().resolve()


def sandbox_activities(settings: Settings, store: LockdownStore, gate: LockdownGate,
                       policy: PermissionPolicy, blobs=None) -> SandboxActivities:
    """`blobs` (activities.blobs.BlobStore) keeps the whole of an output stream trimmed for history."""
    assert settings.root is not None
    return SandboxActivities(sandbox_dir(settings), microvm_dir(settings), PlatformFiles(settings.root), policy,
                             store, gate, microvm_accel=settings.microvm_accel, caps=settings.sandbox_caps(),
                             blobs=blobs, history_output_bytes=settings.sandbox_history_output_bytes)


async def sweep_at_start(client: Client, settings: Settings) -> list[str]:
    try:
        destroyed = await sweep_orphans(client, sandbox_dir(settings))
    except Exception:  # noqa: BLE001 - a failed sweep must not stop the worker; the next start tries again
        log.exception("sandbox orphan sweep failed")
        return []
    if destroyed:
        log.info("destroyed %d orphan sandbox(es): %s", len(destroyed), ", ".join(destroyed))
    return destroyed
