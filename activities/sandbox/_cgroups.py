"""cgroup v1 limits for one sandbox (memory, pids, cpu), where the hierarchies are writable; else nothing.

Each sandbox gets `<controller>/hybrid-sandbox/<id>` in every writable controller. The runner puts the sandbox's
first process into them before it execs anything (a shell writes its own pid), so every descendant is inside.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from domain.sandbox import Limits

ROOT = Path("/sys/fs/cgroup")
PARENT = "hybrid-sandbox"
CONTROLLERS = ("memory", "pids", "cpu")


def available(root: Path = ROOT) -> bool:
    """All three v1 controllers are mounted and we may create groups in them."""
    for c in CONTROLLERS:
        d = root / c
        if not (d / "cgroup.procs").exists() or not os.access(d, os.W_OK):
            return False
    return True


class SandboxCgroup:
    def __init__(self, sandbox_id: str, root: Path = ROOT) -> None:
        self.dirs = {c: root / c / PARENT / sandbox_id for c in CONTROLLERS}

    def create(self, limits: Limits) -> None:
        for d in self.dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        mem = self.dirs["memory"]
        _write(mem / "memory.limit_in_bytes", limits.memory_mb * 1024 * 1024)
        if (mem / "memory.memsw.limit_in_bytes").exists():  # no escape into swap
            _write(mem / "memory.memsw.limit_in_bytes", limits.memory_mb * 1024 * 1024, missing_ok=True)
        _write(self.dirs["pids"] / "pids.max", limits.pids)
        cpu = self.dirs["cpu"]
        period = 100_000
        _write(cpu / "cpu.cfs_period_us", period)
        _write(cpu / "cpu.cfs_quota_us", period * limits.cpu_percent // 100)

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs.values():
            try:
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
        return found

    def kill_all(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while (pids := self.pids()) and time.monotonic() < deadline:  # loops only while something runs
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def events(self) -> list[str]:
        """Which limits the run ran into."""
        hit = []
        oom = _read(self.dirs["memory"] / "memory.oom_control")
        if any(line.split()[-1] != "0" for line in oom.splitlines() if line.startswith("oom_kill ")):
            hit.append("memory")
        pe = _read(self.dirs["pids"] / "pids.events")
        if any(line.split()[-1] != "0" for line in pe.splitlines() if line.startswith("max ")):
            hit.append("pids")
        cs = _read(self.dirs["cpu"] / "cpu.stat")
        if any(line.split()[-1] != "0" for line in cs.splitlines() if line.startswith("nr_throttled ")):
            hit.append("cpu")
        return hit

    def destroy(self) -> None:
        self.kill_all()
        for d in self.dirs.values():
            for i in range(400):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # still emptying (the last process is being reaped)
                    time.sleep(0.001 if i < 100 else 0.01)


def existing(root: Path = ROOT) -> set[str]:
    """Sandbox ids that still have a group in any controller."""
    found: set[str] = set()
    for c in CONTROLLERS:
        d = root / c / PARENT
        if d.is_dir():
            found.update(p.name for p in d.iterdir() if p.is_dir())
    return found


def _write(path: Path, value: int, missing_ok: bool = False) -> None:
    try:
        path.write_text(str(value))
    except FileNotFoundError:
        if not missing_ok:
            raise
    except OSError:
        if not missing_ok:
            raise


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
