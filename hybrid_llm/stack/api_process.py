"""The HTTP API (`hybrid-llm serve`) as a detached daemon, started by `up`: the web console, the codec endpoint the
Temporal Web UI decodes histories through, and the API for remote CLIs."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import httpx

from hybrid_llm.stack import procs
from hybrid_llm.stack.errors import StackError
from hybrid_llm.stack.worker_process import settings_env

if TYPE_CHECKING:
    from hybrid_llm.settings import Settings


class ApiProcess:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid_file = settings.state_dir / "api.pid"
        self.log_file = settings.state_dir / "logs" / "api.log"

    @property
    def url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "hybrid_llm.cli.main", "serve", "--log-level", "warning"]

    def pid(self) -> int | None:
        pid = procs.read_pid(self.pid_file)
        return pid if procs.alive(pid, procs.cmdline_has("hybrid_llm.cli.main serve")) else None

    def start(self, timeout_s: float = 30.0) -> int:
        """Start the API (or find ours running) and wait until /healthz answers; returns its pid."""
        pid = self.pid()
        if pid is None:
            port = self.settings.api_port
            if not procs.port_free(port, self.settings.api_host):
                raise StackError(f"the API port {port} is used by {procs.port_holder(port)}; stop it or set "
                                 "HYBRID_API_PORT")
            pid = procs.spawn_detached(self.command(), self.log_file, env=settings_env(self.settings),
                                       cwd=self.settings.state_dir)
            procs.write_pid(self.pid_file, pid)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not procs.alive(pid):
                raise StackError(f"the API (pid {pid}) exited during start-up; {procs.log_tail(self.log_file)}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return pid
            except httpx.TransportError:
                time.sleep(0.2)
        raise StackError(f"the API (pid {pid}) did not answer on {self.url} within {timeout_s:.0f} s; "
                         f"{procs.log_tail(self.log_file)}")

    def stop(self, timeout_s: float = 10.0) -> bool:
        pid = self.pid()
        if pid is not None:
            procs.stop_pid(pid, timeout_s)
        self.pid_file.unlink(missing_ok=True)
        return pid is not None
