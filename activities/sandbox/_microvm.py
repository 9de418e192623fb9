"""The `microvm` backend: QEMU `microvm` with our own kernel and busybox initramfs (scripts/build_microvm_assets.sh).

No network device (`-nic none`): the guest has no way out, whatever runs in it. Files go in as a tar on a
read-only virtio disk; results (exit code, capped stdout/stderr, the work folder) come back as a tar on a second
virtio disk. KVM when configured and working, TCG otherwise. The guest's /init (microvm_init.sh) applies the
limits inside: memory is the VM's RAM, pids/cpu/file size are rlimits for uid 65534, the wall clock a watcher.
"""

from __future__ import annotations

import io
import logging
import os
import shlex
import shutil
import signal
import stat
import subprocess
import tarfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from activities.sandbox._capture import run_capped
from activities.sandbox._extract import extract_results
from activities.sandbox._workspace import SANDBOX_GID, SANDBOX_UID, untraversable
from domain.sandbox import ExecResult, Limits

log = logging.getLogger("hybrid_llm.sandbox")
QEMU = "qemu-system-x86_64"
# QEMU's own seccomp sandbox: no obsolete system calls, no privilege changes, no new processes, no resource control.
QEMU_SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
BOOT_ALLOWANCE_S = 30.0  # host-side wall clock on top of the guest's own: boot + result write under TCG
GUEST_OVERHEAD_MB = 96


@dataclass(frozen=True)
class MicroVMAssets:
    kernel: Path
    initramfs: Path

    @classmethod
    def find(cls, folder: Path) -> "MicroVMAssets | None":
        k, i = Path(folder) / "vmlinuz", Path(folder) / "initramfs.cpio.gz"
        return cls(k, i) if k.is_file() and i.is_file() else None


def unavailable_reason(folder: Path, accel: str = "tcg") -> str | None:
    """None when the microVM can run here (QEMU runs as uid 65534: it must be able to read the assets, and
    /dev/kvm with the kvm accelerator); otherwise why not."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} is not installed (apt-get install qemu-system-x86)"
    assets = MicroVMAssets.find(folder)
    if assets is None:
        return f"no kernel/initramfs in {folder} (run scripts/build_microvm_assets.sh)"
    for f in (assets.kernel, assets.initramfs):
        if blocked := untraversable(f.parent):
            return f"uid {SANDBOX_UID} (QEMU's) cannot reach {f} ({blocked} is not searchable by others)"
        if not os.stat(f).st_mode & stat.S_IROTH:
            return f"uid {SANDBOX_UID} (QEMU's) cannot read {f} (chmod o+r)"
    if accel == "kvm":
        try:
            rw = stat.S_IROTH | stat.S_IWOTH
            if os.stat("/dev/kvm").st_mode & rw != rw:
                return f"uid {SANDBOX_UID} (QEMU's) cannot open /dev/kvm (use accel tcg, or chmod o+rw /dev/kvm)"
        except OSError:
            return "no /dev/kvm (use accel tcg)"
    return None


@lru_cache(maxsize=1)
def host_tsc_khz() -> int:
    """The guest kernel needs the TSC frequency up front under TCG (else ~1 boot in 8 hangs calibrating)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return int(float(line.split(":")[1]) * 1000)
    except OSError:
        pass
    return 2_000_000


def qemu_args(assets: MicroVMAssets, job: Path, out: Path, limits: Limits, accel: str) -> list[str]:
    cmdline = (f"console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init tsc_early_khz={host_tsc_khz()} "
               "tsc=reliable mitigations=off")
    return [QEMU, "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on", "-accel", accel, "-cpu", "max",
            "-smp", "1", "-m", str(limits.memory_mb + GUEST_OVERHEAD_MB), "-nodefaults", "-no-user-config",
            "-nographic", "-no-reboot", "-nic", "none", "-serial", "stdio", "-sandbox", QEMU_SANDBOX,
            "-kernel", str(assets.kernel), "-initrd", str(assets.initramfs), "-append", cmdline,
            "-drive", f"id=job,file={job},format=raw,if=none,readonly=on", "-device", "virtio-blk-device,drive=job",
            "-drive", f"id=out,file={out},format=raw,if=none", "-device", "virtio-blk-device,drive=out"]


def qemu_user_args() -> list[str]:
    """QEMU as uid/gid 65534: no capabilities (inheritable, bounding), no new privileges, dies with the worker."""
    return ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_GID}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", "--pdeathsig=KILL", "--"]


def _job_tar(path: Path, work: Path, argv: list[str], limits: Limits) -> None:
    env = {"WALL_S": max(1, int(limits.wall_s + 0.999)), "PIDS": limits.pids, "CPU_S": limits.cpu_s,
           "FILE_BLOCKS": max(1, limits.file_bytes // 512), "OUT_KB": limits.output_bytes // 1024 + 64,
           "WORK_KB": max(limits.file_bytes // 1024 * 2, 16384)}
    run = "cd /work\nexport HOME=/work PATH=/bin TMPDIR=/tmp\nexec " + shlex.join(argv) + "\n"
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, text in (("job/env", "".join(f"{k}={v}\n" for k, v in env.items())), ("job/run", run)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("work")
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, SANDBOX_UID, SANDBOX_GID
        tar.addfile(info)
        for entry in sorted(work.iterdir()):
            if entry.is_file() and not entry.is_symlink():
                tar.add(entry, arcname=f"work/{entry.name}", recursive=False)


def _read_results(out: Path, work: Path, output_bytes: int) -> dict[str, bytes]:
    """The guest's out/ files; its work/ files (regular files and folders only, inside `work`) into `work`,
    unpacked as the sandbox's uid (`_extract.py`, `_untar.py`)."""
    found, report = extract_results(out, work, out.parent / "results", output_bytes)
    if report.get("refused"):
        log.warning("microvm result archive %s: refused %d member(s): %s", out, report["refused"],
                    ", ".join(report.get("refused_names", [])[:10]))
    return found


def run_microvm(vm_dir: Path, work: Path, argv: list[str], limits: Limits, assets: MicroVMAssets,
                tick: Callable[[], None] | None = None, accel: str = "tcg",
                admit: Callable[[], AbstractContextManager] | None = None) -> ExecResult:
    job, out = vm_dir / "job.tar", vm_dir / "out.img"
    _job_tar(job, work, argv, limits)
    out_size = limits.output_bytes + max(limits.file_bytes * 2, 16 << 20) + (1 << 20)
    with open(out, "wb") as f:
        f.truncate(out_size)  # sparse: the guest's tar lands here, its size caps what comes back
    for p in (job, out):  # QEMU itself runs as uid 65534 and dies with the worker (pdeathsig)
        os.chown(p, SANDBOX_UID, SANDBOX_GID)
    os.chmod(job, stat.S_IRUSR)

    def kill(proc: subprocess.Popen) -> None:
        try:
            proc.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass

    argv = [*qemu_user_args(), *qemu_args(assets, job, out, limits, accel)]
    cap = run_capped(argv, wall_s=limits.wall_s + BOOT_ALLOWANCE_S, output_bytes=256 * 1024, kill=kill, tick=tick,
                     admit=admit)
    res = _read_results(out, work, limits.output_bytes)
    for p in (job, out):
        p.unlink(missing_ok=True)
    status = res.get("status", b"").decode(errors="replace").split()
    rc_text = res.get("rc", b"").strip()
    rc = int(rc_text) if rc_text.lstrip(b"-").isdigit() else None
    stdout, stderr = res.get("stdout", b""), res.get("stderr", b"")
    hit: list[str] = []
    stopped = None
    if "timeout" in status or cap.timed_out:
        stopped, rc, hit = "timeout", None, ["wall_clock"]
    elif "memory" in status:
        stopped, hit = "memory", ["memory"]
    elif len(stdout) + len(stderr) >= limits.output_bytes:
        stopped, hit = "output_limit", ["output"]
    elif rc is not None and rc == 128 + signal.SIGXFSZ:
        stopped, hit = "file_size", ["file_size"]
    elif rc is not None and rc == 128 + signal.SIGXCPU:
        stopped, hit = "cpu", ["cpu_time"]
    if b"can't fork" in stderr.lower() or b"cannot fork" in stderr.lower() or b"resource temporarily" in stderr.lower():
        hit.append("pids")
        if stopped is None and rc not in (0, None):
            stopped = "pids"
    if rc is None and stopped is None:
        stderr += f"\n[microvm: no result from the guest (qemu exit {cap.returncode}): " \
                  f"{cap.stdout[-500:].decode(errors='replace')}]".encode()
    room = limits.output_bytes
    stdout = stdout[:room]
    stderr = stderr[:max(0, room - len(stdout))]
    return ExecResult(exit_code=rc, stdout=stdout.decode("utf-8", "replace"), stderr=stderr.decode("utf-8", "replace"),
                      stdout_bytes=len(res.get("stdout", b"")), stderr_bytes=len(res.get("stderr", b"")),
                      truncated=stopped == "output_limit", stopped=stopped, limits_hit=sorted(set(hit)),
                      duration_ms=round(cap.duration_ms, 1), network=False,
                      enforcement=f"microvm ({accel}): own kernel, {limits.memory_mb + GUEST_OVERHEAD_MB} MiB RAM, "
                                  "no network device, QEMU seccomp sandbox as uid 65534, rlimits for uid 65534 "
                                  "inside")
