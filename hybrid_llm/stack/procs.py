"""Process plumbing shared by the stack parts: detached spawn, pid files, ports, stopping, log tails."""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psutil

from hybrid_llm.stack.errors import StackError

T = TypeVar("T")


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even when called inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


# Runs in a throwaway interpreter: starts the daemon in its own session, prints its pid, exits. The daemon is
# then nobody's child here (no zombie, no "still running" warning) and outlives the caller.
_LAUNCHER = """
import subprocess, sys
cwd, log, *args = sys.argv[1:]
with open(log, "ab") as out:
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         start_new_session=True, close_fds=True, cwd=cwd or None)
print(p.pid)
"""


def spawn_detached(args: Sequence[str], log_file: Path, *, env: Mapping[str, str] | None = None,
                   cwd: Path | None = None) -> int:
    """Start a daemon in its own session, output appended to `log_file`; returns its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-I", "-c", _LAUNCHER, str(cwd or ""), str(log_file), *args],
                         env=dict(env) if env is not None else None, capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise StackError(f"cannot start {args[0]}: {out.stderr.strip()}")
    return int(out.stdout)


def alive(pid: int | None, match: Callable[[psutil.Process], bool] | None = None) -> bool:
    """The process exists, is not a zombie and (if given) `match` accepts it (guards against pid reuse)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return match(proc) if match else True
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def cmdline_has(*needles: str) -> Callable[[psutil.Process], bool]:
    def _match(proc: psutil.Process) -> bool:
        line = " ".join(proc.cmdline())
        return all(n in line for n in needles)

    return _match


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(pid_file)


def stop_pid(pid: int, timeout_s: float = 15.0) -> None:
    """SIGTERM, wait up to `timeout_s`, then SIGKILL. Reaps the process if it is our child."""
    try:
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    except psutil.NoSuchProcess:
        pass
    try:  # psutil only reaps children it waited for; make sure no zombie stays behind
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def port_accepts(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def port_holder(port: int) -> str:
    """'pid 123 (name)' of the process listening on `port`, as far as we may know it."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        conns = []
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            try:
                return f"pid {c.pid} ({psutil.Process(c.pid).name()})"
            except psutil.NoSuchProcess:
                return f"pid {c.pid}"
    return "another process"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for tests and ad-hoc servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    tail = "\n".join(text.rstrip().splitlines()[-lines:])
    return f"last lines of {path}:\n{tail}" if tail else f"({path} is empty)"


def wait_until(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
