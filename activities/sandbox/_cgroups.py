"""cgroup limits for one sandbox (memory, pids, cpu): v1 where its hierarchies are writable, else v2 where the
unified hierarchy delegates the three controllers to us; else nothing (and model-proposed code is refused).

v1: `<controller>/hybrid-sandbox/<id>` in every controller. v2: `<unified>/hybrid-sandbox/<id>` with memory.max,
memory.swap.max = 0, pids.max, cpu.max; killed with cgroup.kill. The runner puts the sandbox's first process into
them before it execs anything (a shell writes its own pid), so every descendant is inside.
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
    """Some cgroup version can hold memory, pids and CPU here."""
    return v1_available(root) or v2_root(root) is not None


def kind(root: Path = ROOT) -> str | None:
    return "v1" if v1_available(root) else "v2" if v2_root(root) is not None else None


def v2_root(root: Path = ROOT) -> Path | None:
    """The unified hierarchy (at /sys/fs/cgroup itself, or /sys/fs/cgroup/unified beside v1) when memory, pids and
    cpu are enabled in it and it is writable."""
    for d in (root, root / "unified"):
        try:
            controllers = set((d / "cgroup.controllers").read_text().split())
        except OSError:
            continue
        if set(CONTROLLERS) <= controllers and os.access(d, os.W_OK) and _delegated(d):
            return d
    return None


def _delegated(d: Path) -> bool:
    """The three controllers are enabled for d's children (enabling them here once if need be: that fails where
    d itself holds processes, e.g. a container's namespaced root, and then v2 cannot be used)."""
    try:
        enabled = {c.lstrip("+") for c in (d / "cgroup.subtree_control").read_text().split()}
        if not set(CONTROLLERS) <= enabled:
            (d / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in CONTROLLERS if c not in enabled))
            enabled = {c.lstrip("+") for c in (d / "cgroup.subtree_control").read_text().split()}
    except OSError:
        return False
    return set(CONTROLLERS) <= enabled


def SandboxCgroup(sandbox_id: str, root: Path = ROOT) -> "CgroupV1 | CgroupV2":  # noqa: N802 - kept name
    """The sandbox's group in whichever version this host gives us (v1 first, as before)."""
    if not v1_available(root) and (unified := v2_root(root)) is not None:
        return CgroupV2(sandbox_id, unified)
    return CgroupV1(sandbox_id, root)


def v1_available(root: Path = ROOT) -> bool:
    """All three v1 controllers are mounted and we may create groups in them."""
    for c in CONTROLLERS:
        d = root / c
        if not (d / "cgroup.procs").exists() or not os.access(d, os.W_OK):
            return False
    return True


class CgroupV1:
    version = "v1"

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


class CgroupV2:
    version = "v2"

    def __init__(self, sandbox_id: str, unified: Path) -> None:
        self.parent = unified / PARENT
        self.dir = self.parent / sandbox_id
        self.dirs = {"unified": self.dir}

    def create(self, limits: Limits) -> None:
        self.parent.mkdir(exist_ok=True)
        _write_text(self.parent / "cgroup.subtree_control", "+memory +pids +cpu")
        self.dir.mkdir(exist_ok=True)
        _write(self.dir / "memory.max", limits.memory_mb * 1024 * 1024)
        _write(self.dir / "memory.swap.max", 0, missing_ok=True)
        _write(self.dir / "pids.max", limits.pids)
        period = 100_000
        _write_text(self.dir / "cpu.max", f"{period * limits.cpu_percent // 100} {period}")

    def procs_files(self) -> list[str]:
        return [str(self.dir / "cgroup.procs")]

    def pids(self) -> set[int]:
        try:
            return {int(p) for p in (self.dir / "cgroup.procs").read_text().split()}
        except (OSError, ValueError):
            return set()

    def kill_all(self, timeout_s: float = 5.0) -> None:
        if (self.dir / "cgroup.kill").exists():
            _write(self.dir / "cgroup.kill", 1, missing_ok=True)
        deadline = time.monotonic() + timeout_s
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)

    def events(self) -> list[str]:
        hit = []
        if _counter(_read(self.dir / "memory.events"), "oom_kill"):
            hit.append("memory")
        if _counter(_read(self.dir / "pids.events"), "max"):
            hit.append("pids")
        if _counter(_read(self.dir / "cpu.stat"), "nr_throttled"):
            hit.append("cpu")
        return hit

    def destroy(self) -> None:
        self.kill_all()
        for i in range(400):
            try:
                self.dir.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.001 if i < 100 else 0.01)


def existing(root: Path = ROOT) -> set[str]:
    """Sandbox ids that still have a group in any controller (v1) or in the unified hierarchy (v2)."""
    found: set[str] = set()
    unified = v2_root(root)
    for d in [root / c / PARENT for c in CONTROLLERS] + ([unified / PARENT] if unified is not None else []):
        if d.is_dir():
            found.update(p.name for p in d.iterdir() if p.is_dir())
    return found


def _counter(text: str, key: str) -> bool:
    return any(line.split()[-1] != "0" for line in text.splitlines() if line.startswith(key + " "))


def _write_text(path: Path, value: str) -> None:
    path.write_text(value)


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
