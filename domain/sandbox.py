"""Sandboxes: what runs, under which limits, with which isolation, and what a person decided about its output.

Pure: no I/O. The lifecycle is create -> configure -> execute -> review -> approve | reject -> destroy; the
workflow records every step (`Step`) in history, and destroy always happens.
"""

from __future__ import annotations

import re
import shlex
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.principals import Principal

from domain.egress import EgressAttempt, parse_grant

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")
SANDBOX_ID = r"^[a-z0-9][a-z0-9-]{0,62}$"
# What the workflow keeps of each stream in history; the full (capped) streams stay in the sandbox until destroy.
HISTORY_STREAM_CHARS = 64 * 1024


class Backend(StrEnum):
    NAMESPACE = "namespace"  # bubblewrap: every namespace unshared, unprivileged uid, cgroup limits
    MICROVM = "microvm"  # QEMU microvm with our own kernel: a separate kernel between the code and the host


class Language(StrEnum):
    SHELL = "shell"
    PYTHON = "python"


class Origin(BaseModel):
    """Who proposed the code: a person, or a model (local or cloud)."""

    model_config = ConfigDict(frozen=True)

    actor: Literal["user", "model"] = "user"
    model_id: str | None = Field(default=None, max_length=64)
    local: bool = True
    capabilities: tuple[str, ...] = ()
    name: str = Field(default="user", max_length=200, description="who, for the record")


class Limits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    memory_mb: int = Field(default=256, ge=16, le=16384)
    pids: int = Field(default=64, ge=4, le=4096)
    cpu_percent: int = Field(default=100, ge=5, le=800, description="CPU time per wall second, in % of a core")
    cpu_s: int = Field(default=60, ge=1, le=3600, description="CPU seconds in total (RLIMIT_CPU)")
    wall_s: float = Field(default=30.0, gt=0, le=3600)
    output_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024,
                              description="stdout + stderr; more stops the run")
    file_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024,
                            description="largest file the code may write (RLIMIT_FSIZE)")
    max_files: int = Field(default=64, ge=0, le=10_000, description="produced files offered for review")


class LimitCaps(BaseModel):
    """The most a caller may ask for (operator settings `HYBRID_SANDBOX_MAX_*`). Above a cap: refused, never
    clamped."""

    model_config = ConfigDict(frozen=True)

    memory_mb: int = 2048
    pids: int = 256
    cpu_percent: int = 200
    cpu_s: int = 600
    wall_s: float = 600.0
    output_bytes: int = 16 * 1024 * 1024
    file_bytes: int = 256 * 1024 * 1024
    max_files: int = 1000


class LimitsRefused(ValueError):
    """A caller asked for more than the operator allows."""


def check_caps(limits: Limits, caps: LimitCaps) -> None:
    """Raise LimitsRefused naming every limit above its cap."""
    over = [f"{name} {getattr(limits, name)} > {cap}" for name, cap in caps.model_dump().items()
            if getattr(limits, name) > cap]
    if over:
        raise LimitsRefused("sandbox limits above the operator's caps (HYBRID_SANDBOX_MAX_*): " + ", ".join(over))


class SandboxSpec(BaseModel):
    """What to run. Either `command` (argv) or `code` in a `language` (a template turns it into argv)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command: tuple[str, ...] = ()
    code: str | None = Field(default=None, max_length=1_000_000)
    language: Language = Language.SHELL
    files: dict[str, str] = Field(default_factory=dict, description="input files (name -> text) in the work folder")
    backend: Backend | None = Field(default=None, description="None: the isolation policy chooses")
    limits: Limits = Limits()
    network_hosts: tuple[str, ...] = Field(default=(), description="hosts the code needs; each one is a "
                                                                    "permission request, network stays off otherwise")
    origin: Origin = Origin()

    @field_validator("files")
    @classmethod
    def _names(cls, files: dict[str, str]) -> dict[str, str]:
        for name in files:
            if not _NAME.match(name) or name in (".", ".."):
                raise ValueError(f"input file name {name!r}: plain names only (letters, digits, . _ -)")
        if sum(len(v) for v in files.values()) > 8 * 1024 * 1024:
            raise ValueError("input files: more than 8 MiB in total")
        return files

    @field_validator("network_hosts")
    @classmethod
    def _hosts(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        if len(hosts) > 32:
            raise ValueError("network_hosts: at most 32")
        for h in hosts:
            parse_grant(h)  # host or host:port, nothing else
        return hosts

    @model_validator(mode="after")
    def _something_to_run(self) -> "SandboxSpec":
        if bool(self.command) == (self.code is not None):
            raise ValueError("give either a command or code, not both and not neither")
        if self.code is not None and self.entry_file() in self.files:
            raise ValueError(f"{self.entry_file()} is the code's own file; name the input files differently")
        return self

    def entry_file(self) -> str:
        return "main.py" if self.language == Language.PYTHON else "main.sh"

    def argv(self) -> list[str]:
        """The templates: Python runs isolated (-I: no user site, no env), shell with -e."""
        if self.command:
            return list(self.command)
        if self.language == Language.PYTHON:
            return ["python3", "-I", "-B", self.entry_file()]
        return ["/bin/sh", "-e", self.entry_file()]

    def all_files(self) -> dict[str, str]:
        files = dict(self.files)
        if self.code is not None:
            files[self.entry_file()] = self.code
        return files

    def text_to_scan(self) -> str:
        return self.code if self.code is not None else shlex.join(self.command)

    def scan_kind(self) -> Literal["command", "prompt"]:
        """Shell goes through the command rules; Python code through the output rules (commands inside it too)."""
        return "prompt" if self.code is not None and self.language == Language.PYTHON else "command"


class IsolationChoice(BaseModel):
    backend: Backend
    reason: str


def choose_isolation(spec: SandboxSpec, risk: str, microvm_available: bool) -> IsolationChoice:
    """Stronger isolation for riskier code: code from a cloud model, or flagged by the guardrails (any risk
    above `low`; a person's own code that the guardrails would block, see domain.guardrails.consequence), goes to
    the microVM; everything else may use the namespace sandbox. An explicit request for
    the microVM is always honoured; an explicit namespace request is overridden when policy wants the microVM."""
    wants_vm, why = False, ""
    if spec.origin.actor == "model" and not spec.origin.local:
        wants_vm, why = True, f"code from a cloud model ({spec.origin.model_id or 'unknown'})"
    elif risk in ("medium", "high", "critical"):  # critical reaches here only for a person's own code
        wants_vm, why = True, f"the guardrails flagged the code (risk {risk})"
    if spec.backend == Backend.MICROVM:
        return IsolationChoice(backend=Backend.MICROVM, reason="microvm requested")
    if wants_vm:
        if not microvm_available:
            raise IsolationUnavailable(f"{why} needs the microVM, which is not set up on this worker "
                                       "(scripts/build_microvm_assets.sh)")
        return IsolationChoice(backend=Backend.MICROVM, reason=f"{why}: microvm")
    return IsolationChoice(backend=Backend.NAMESPACE,
                           reason="namespace requested" if spec.backend else "default: namespace")


class IsolationUnavailable(ValueError):
    """Policy needs an isolation level this worker cannot give."""


class Step(StrEnum):
    CREATED = "created"
    CONFIGURED = "configured"
    EXECUTING = "executing"
    REVIEWING = "reviewing"
    APPROVED = "approved"
    REJECTED = "rejected"
    DELIVERED = "delivered"
    BLOCKED = "blocked"  # the guardrails refused the code: it never ran
    FAILED = "failed"
    DESTROYED = "destroyed"


class ProducedFile(BaseModel):
    path: str = Field(description="relative to the work folder")
    size: int
    sha256: str


class ExecResult(BaseModel):
    exit_code: int | None = Field(description="None when the run was stopped before it exited")
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    truncated: bool = False
    stopped: Literal["timeout", "output_limit", "memory", "pids", "cpu", "file_size"] | None = None
    limits_hit: list[str] = Field(default_factory=list, description="limits the run ran into (contained)")
    duration_ms: float = 0.0
    files: list[ProducedFile] = Field(default_factory=list)
    enforcement: str = Field(default="", description="how limits were applied: cgroup v1, rlimits, microvm")
    network: bool = False
    egress: list[EgressAttempt] = Field(default_factory=list, description="connections asked of the egress proxy")
    egress_dropped: int = Field(default=0, description="attempts beyond the recorded ones")
    stdout_sha256: str | None = Field(default=None, description="the full stdout in the blob store, when trimmed")
    stderr_sha256: str | None = Field(default=None, description="the full stderr in the blob store, when trimmed")


class SandboxRef(BaseModel):
    sandbox_id: str = Field(pattern=SANDBOX_ID)
    workflow_id: str = ""


class CreateRequest(SandboxRef):
    backend: Backend
    limits: Limits = Limits()


class ConfigureRequest(SandboxRef):
    files: dict[str, str] = Field(default_factory=dict)


class ExecRequest(SandboxRef):
    backend: Backend
    argv: list[str] = Field(min_length=1)
    limits: Limits = Limits()
    network: bool = False
    network_hosts: list[str] = Field(default_factory=list, description="granted hosts (host or host:port)")
    model_code: bool = Field(default=False, description="proposed by a model: refused without cgroup limits")
    inputs: list[str] = Field(default_factory=list, description="input names: not offered back as produced files")


class DeliverRequest(SandboxRef):
    files: list[ProducedFile]
    origin: Origin = Origin()
    folder: str = Field(description="platform-relative target folder, e.g. downloads/sandbox-<id>")


class Delivery(BaseModel):
    path: str
    decision: Literal["allow", "deny", "ask"]
    reason: str
    bytes_written: int = 0


class ReviewDecision(BaseModel):
    approve: bool
    by: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=2000)
    principal: Principal | None = Field(default=None, description="who decided, stamped by the entry point; a "
                                        "review without one is refused")


class SandboxInput(BaseModel):
    spec: SandboxSpec
    sandbox_id: str = Field(pattern=SANDBOX_ID)
    approve: ReviewDecision | None = Field(default=None, description="a decision given up front (exec --approve)")
    requester: Principal | None = Field(default=None, description="who started the run (stamped by the entry point)")
    four_eyes: bool = Field(default=True, description="a reviewer must not be the requester, except for the "
                                                      "requester's own code (the operator's setting, recorded)")
    review_timeout_s: float = Field(default=24 * 3600, gt=0, description="no decision by then: rejected")
    approval_timeout_s: float = Field(default=24 * 3600, gt=0, description="for network permission requests")
    heartbeat_timeout_s: float = Field(default=5.0, gt=0, description="how soon a run lost with its worker is noticed")


class ReviewView(BaseModel):
    """What a person sees before deciding (`sandbox show`)."""

    workflow_id: str
    sandbox_id: str
    step: Step
    backend: Backend | None = None
    isolation_reason: str = ""
    code: str
    argv: list[str] = Field(default_factory=list)
    origin: Origin = Origin()
    result: ExecResult | None = None
    network_hosts: list[str] = Field(default_factory=list)
    history: list[str] = Field(default_factory=list, description="steps so far")


class SandboxOutcome(BaseModel):
    workflow_id: str
    sandbox_id: str
    status: Literal["approved", "rejected", "blocked", "failed"]
    backend: Backend | None = None
    isolation_reason: str = ""
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    stopped: str | None = None
    limits_hit: list[str] = Field(default_factory=list)
    truncated: bool = False
    duration_ms: float = 0.0
    files: list[ProducedFile] = Field(default_factory=list)
    delivered: list[Delivery] = Field(default_factory=list)
    decided_by: str | None = None
    reason: str = ""
    network: bool = False
    egress: list[EgressAttempt] = Field(default_factory=list, description="connections asked of the egress proxy")
    stdout_sha256: str | None = None
    stderr_sha256: str | None = None
    steps: list[str] = Field(default_factory=list)
    destroyed: bool = False


def sandbox_workflow_id(sandbox_id: str) -> str:
    return f"sandbox-{sandbox_id}"


def delivery_folder(sandbox_id: str) -> str:
    return f"downloads/sandbox-{sandbox_id}"


def clip(text: str, limit: int = HISTORY_STREAM_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} more characters]"
