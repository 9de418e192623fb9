"""`up`, `down`, `status`: the embedded stack as one thing (Temporal, PostgreSQL, the worker)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from hybrid_llm.stack import migrate, procs
from hybrid_llm.stack.errors import StackError
from hybrid_llm.stack.postgres import EmbeddedPostgres
from hybrid_llm.stack.status import PartStatus, StackStatus
from hybrid_llm.stack.temporal_server import TemporalServer, reachable
from hybrid_llm.stack.api_process import ApiProcess
from hybrid_llm.stack.worker_process import WorkerProcess

if TYPE_CHECKING:
    from hybrid_llm.settings import Settings


@contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    """One `up`/`down` at a time per state dir (two at once would start two of everything)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.state_dir / "stack.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def up(settings: Settings) -> StackStatus:
    """Start what is not running (reusing what is), migrate the database, start the worker."""
    with _locked(settings):
        _up(settings)
    return status(settings)


def down(settings: Settings) -> StackStatus:
    """Stop what we started: the worker first, then Temporal, then PostgreSQL. External services stay."""
    with _locked(settings):
        ApiProcess(settings).stop()
        WorkerProcess(settings).stop()
        if settings.embedded_temporal:
            TemporalServer.from_settings(settings).stop()
        if settings.embedded_database:
            EmbeddedPostgres.from_settings(settings).stop()
    return status(settings)


def _up(settings: Settings) -> None:
    (settings.state_dir / "logs").mkdir(exist_ok=True)
    from hybrid_llm.temporal import keyring_for

    keyring_for(settings)  # the codec keyring (0600) every local entry point and the worker seal payloads with
    for path in settings.platform_dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    if settings.embedded_temporal:
        TemporalServer.from_settings(settings).start()
    elif not reachable(settings.temporal_target):
        raise StackError(f"cannot reach Temporal at HYBRID_TEMPORAL_ADDRESS={settings.temporal_target}; start that "
                         "server, or unset HYBRID_TEMPORAL_ADDRESS to use the embedded dev server")
    if settings.embedded_database:
        EmbeddedPostgres.from_settings(settings).start()
    migrate.upgrade(settings.effective_database_url)
    from hybrid_llm.identity import ensure_local_credential

    ensure_local_credential(settings)  # <state_dir>/operator.key (0600): the local CLI's operator key
    WorkerProcess(settings).start()
    ApiProcess(settings).start()  # console, codec endpoint for the Web UI, API for remote CLIs


def status(settings: Settings) -> StackStatus:
    """Report each part without starting anything."""
    parts = [_temporal(settings), _postgres(settings), _worker(settings), _api(settings)]
    return StackStatus(parts={p.name: p for p in parts}, temporal_ui=settings.temporal_ui_url,
                       state_dir=str(settings.state_dir))


def _temporal(settings: Settings) -> PartStatus:
    address = settings.temporal_target
    if not settings.embedded_temporal:
        ok = reachable(address)
        return PartStatus(name="temporal", state="external" if ok else "unreachable", address=address,
                          detail="HYBRID_TEMPORAL_ADDRESS" if ok else "does not answer (HYBRID_TEMPORAL_ADDRESS)")
    server = TemporalServer.from_settings(settings)
    pid = server.pid()
    if pid is None:
        busy = ("" if procs.port_free(server.port)
                else f"; port {server.port} is used by {procs.port_holder(server.port)}")
        return PartStatus(name="temporal", state="stopped", address=address, detail=f"embedded dev server{busy}")
    detail = f"db {_rel(settings, server.db_file)}, log {_rel(settings, server.log_file)}"
    if not server.serving():
        detail = f"not answering yet; {detail}"
    return PartStatus(name="temporal", state="running", pid=pid, address=address, detail=detail)


def _postgres(settings: Settings) -> PartStatus:
    url = migrate.safe_url(settings.effective_database_url)
    if not settings.embedded_database:
        try:
            migrate.check_reachable(settings.effective_database_url, timeout_s=3)
        except StackError as e:
            return PartStatus(name="postgres", state="unreachable", address=url, detail=str(e))
        return PartStatus(name="postgres", state="external", address=url, detail="HYBRID_DATABASE_URL")
    pg = EmbeddedPostgres.from_settings(settings)
    pid = pg.pid()
    return PartStatus(name="postgres", state="running" if pid else "stopped", pid=pid, address=url,
                      detail=f"data {_rel(settings, pg.data_dir)}, log {_rel(settings, pg.log_file)}")


def _worker(settings: Settings) -> PartStatus:
    worker = WorkerProcess(settings)
    pid = worker.pid()
    return PartStatus(name="worker", state="running" if pid else "stopped", pid=pid, address=settings.task_queue,
                      detail=f"log {_rel(settings, worker.log_file)}")


def _api(settings: Settings) -> PartStatus:
    api = ApiProcess(settings)
    pid = api.pid()
    return PartStatus(name="api", state="running" if pid else "stopped", pid=pid, address=api.url,
                      detail=f"console {api.url}/console, codec {api.url}/codec, log {_rel(settings, api.log_file)}")


def _rel(settings: Settings, path: Path) -> str:
    """Paths inside the state dir, shown relative to it (the table's title names the state dir)."""
    try:
        return str(path.relative_to(settings.state_dir))
    except ValueError:
        return str(path)
