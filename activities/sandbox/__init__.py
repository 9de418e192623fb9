"""Sandbox activities: create, configure, execute (through the lockdown gate), deliver approved files, destroy.

Backends: `namespace` (bubblewrap, `_namespace.py`) and `microvm` (QEMU microvm, `_microvm.py`). Every
sandbox lives in `<base>/<sandbox id>/` on the worker; `sweep_orphans` destroys those whose workflow is gone.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.interrupts import admitted_run
from activities.filesystem import PathRefused, PlatformFiles, atomic_write, same_content
from activities.lockdown_gate import LockdownGate
from activities.lockdown_store import LockdownStore
from activities.sandbox import _cgroups
from activities.sandbox._microvm import MicroVMAssets, run_microvm, unavailable_reason
from activities.sandbox._namespace import RefusedToRun, run_namespace
from activities.sandbox._output import bound_output, while_ticking
from activities.sandbox._workspace import Workspace, list_workspaces
from domain.egress import parse_grants
from domain.paths import UnsafePath
from domain.permissions import Actor, Operation, PermissionPolicy, PermissionRequest
from domain.registry import Capability
from domain.sandbox import (
    Backend,
    ConfigureRequest,
    CreateRequest,
    DeliverRequest,
    Delivery,
    ExecRequest,
    ExecResult,
    LimitCaps,
    LimitsRefused,
    SandboxRef,
    check_caps,
)
from domain.activity_inputs import SandboxSupport, StatusRequest

__all__ = ["SandboxActivities", "SandboxSupport", "sweep_orphans"]
log = logging.getLogger("hybrid_llm.sandbox")


class SandboxActivities:
    def __init__(self, base: Path, microvm_dir: Path, files: PlatformFiles, policy: PermissionPolicy,
                 store: LockdownStore, gate: LockdownGate, microvm_accel: str = "tcg", caps: LimitCaps | None = None,
                 blobs=None, history_output_bytes: int = 64 * 1024) -> None:
        self.base = Path(base)
        self.microvm_dir = Path(microvm_dir)
        self.files = files
        self.policy = policy
        self.store = store
        self.gate = gate
        self.accel = microvm_accel
        self.caps = caps or LimitCaps()
        self.blobs = blobs  # activities.blobs.BlobStore: the full output of a trimmed stream
        self.history_output_bytes = history_output_bytes

    def all(self) -> list:
        return [self.support, self.create, self.configure, self.execute, self.deliver, self.destroy]

    @activity.defn(name="sandbox.support")
    def support(self, _: StatusRequest | None = None) -> SandboxSupport:
        reason = unavailable_reason(self.microvm_dir, self.accel)
        return SandboxSupport(microvm=reason is None, microvm_reason=reason, cgroups=_cgroups.available())

    @activity.defn(name="sandbox.create")
    def create(self, req: CreateRequest) -> str:
        """A fresh work folder owned by the sandbox's uid (idempotent)."""
        try:
            check_caps(req.limits, self.caps)
        except LimitsRefused as e:
            raise ApplicationError(str(e), type="LimitsRefused", non_retryable=True) from None
        if req.backend == Backend.MICROVM and (why := unavailable_reason(self.microvm_dir, self.accel)):
            raise ApplicationError(f"microvm backend unavailable: {why}", type="BackendUnavailable",
                                   non_retryable=True)
        ws = Workspace(self.base, req.sandbox_id)
        ws.create(req.workflow_id, req.backend.value)
        return str(ws.dir)

    @activity.defn(name="sandbox.configure")
    def configure(self, req: ConfigureRequest) -> list[str]:
        ws = self._existing(req)
        ws.write_inputs(req.files)
        return sorted(req.files)

    @activity.defn(name="sandbox.execute")
    def execute(self, req: ExecRequest) -> ExecResult:
        """Run once, admitted by the lockdown gate; heartbeats while it runs."""
        ws = self._existing(req)
        with self.gate.interrupts.running(f"sandbox run {req.sandbox_id}") as run:
            result = self._execute(req, ws, run)
        run.raise_if_interrupted()  # killed by a lockdown: no result, the workflow asks a person what next
        return result

    def _execute(self, req: ExecRequest, ws: Workspace, run) -> ExecResult:
        def admit():
            return admitted_run(self.gate, f"sandbox run {req.sandbox_id}", run)

        tick = activity.heartbeat
        if req.backend == Backend.MICROVM:
            assets = MicroVMAssets.find(self.microvm_dir)
            if assets is None:
                raise ApplicationError(f"microvm backend unavailable: {unavailable_reason(self.microvm_dir)}",
                                       type="BackendUnavailable", non_retryable=True)
            result = run_microvm(ws.dir, ws.work, req.argv, req.limits, assets, tick=tick, accel=self.accel,
                                 admit=admit)
        else:
            try:
                result = run_namespace(req.sandbox_id, ws.work, req.argv, req.limits, req.network, tick=tick,
                                       admit=admit, grants=parse_grants(req.network_hosts),
                                       require_cgroups=req.model_code)
            except RefusedToRun as e:
                raise ApplicationError(str(e), type="RefusedToRun", non_retryable=True) from None

        def finish() -> ExecResult:
            result.files = ws.collect(set(req.inputs), req.limits.max_files)
            # Trimmed here, inside the activity: only the bounded part can enter workflow history.
            return bound_output(result, self.history_output_bytes, self.blobs.put if self.blobs else None)

        return while_ticking(finish, tick)

    @activity.defn(name="sandbox.deliver")
    def deliver(self, req: DeliverRequest) -> list[Delivery]:
        """Approved files into `req.folder` (under downloads/), each one through the permission policy and the
        lockdown gate, and only if it is byte for byte what the reviewer saw (sha256). Idempotent."""
        ws = self._existing(req)
        actor = Actor.MODEL if req.origin.actor == "model" else Actor.USER
        caps = tuple(Capability(c) for c in req.origin.capabilities if c in Capability._value2member_map_)
        results: list[Delivery] = []
        locked = self.store.read().locked
        for f in req.files:
            rel = f"{req.folder}/{f.path}"
            ask = PermissionRequest(actor=actor, operation=Operation.WRITE, path=rel, capabilities=caps,
                                    model_id=req.origin.model_id if actor == Actor.MODEL else None,
                                    explanation=f"approved output of sandbox {req.sandbox_id}")
            decision = self.files.check_request(ask, self.policy, locked=locked)
            if not decision.allowed:
                results.append(Delivery(path=rel, decision=decision.decision, reason=decision.reason))
                continue
            try:
                written = self._write(ws, f.path, f.sha256, decision.path or rel)
            except (UnsafePath, PathRefused, ValueError, OSError) as e:
                results.append(Delivery(path=rel, decision="deny", reason=f"not delivered: {e}"))
                continue
            results.append(Delivery(path=decision.path or rel, decision="allow", reason=decision.reason,
                                    bytes_written=written))
        return results

    def _write(self, ws: Workspace, rel: str, sha256: str, target_rel: str) -> int:
        fd = ws.open_produced(rel)
        with os.fdopen(fd, "rb") as src:
            data = src.read()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError(f"{rel} changed after review")
        target = self.files.resolve(target_rel).real
        if same_content(target, data):
            return 0
        with self.gate.admit(f"delivering {target_rel}"):
            atomic_write(target, data)
        return len(data)

    @activity.defn(name="sandbox.destroy")
    def destroy(self, ref: SandboxRef) -> bool:
        """Kill whatever still runs, remove the cgroups and the folder. Idempotent; never gated (it is cleanup)."""
        return destroy_sandbox(self.base, ref.sandbox_id)

    def _existing(self, ref: SandboxRef) -> Workspace:
        ws = Workspace(self.base, ref.sandbox_id)
        if not ws.exists():
            raise ApplicationError(f"sandbox {ref.sandbox_id} does not exist (destroyed?)", type="SandboxGone",
                                   non_retryable=True)
        return ws


def destroy_sandbox(base: Path, sandbox_id: str) -> bool:
    had_group = sandbox_id in _cgroups.existing()
    if had_group:
        _cgroups.SandboxCgroup(sandbox_id).destroy()
    return Workspace(base, sandbox_id).destroy() or had_group


async def sweep_orphans(client: Client, base: Path) -> list[str]:
    """Destroy sandboxes whose workflow is closed or unknown (a worker died, nobody cleaned up). Returns their ids."""
    owners = dict(list_workspaces(base))  # only this deployment's: other workers' cgroups are not ours to judge
    destroyed = []
    for sid, owner in owners.items():
        if owner is not None and await _running(client, owner):
            continue
        destroy_sandbox(base, sid)
        destroyed.append(sid)
        log.info("destroyed orphan sandbox %s (workflow %s is %s)", sid, owner, "gone" if owner else "unknown")
    return destroyed


async def _running(client: Client, workflow_id: str) -> bool:
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            return False
        return True  # cannot tell: leave it for the next sweep
    return desc.status == WorkflowExecutionStatus.RUNNING
