"""The embedded stack with real processes: Temporal dev server, PostgreSQL + pgvector, the worker."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from domain.principals import AccessRole
from hybrid_llm.identity import local_principal
from hybrid_llm.settings import Settings
from hybrid_llm.stack import StackError, down, procs, status, up
from hybrid_llm.stack.api_process import ApiProcess
from hybrid_llm.stack.postgres import EmbeddedPostgres
from hybrid_llm.stack.temporal_server import TemporalServer
from hybrid_llm.stack.worker_process import WorkerProcess, settings_env
from tests.conftest import private_tmp_dir

ECHO_REGISTRY = '[[models]]\nid = "echo"\nprovider = "scripted"\ncapabilities = ["general"]\nlocal = true\n'


@pytest.fixture
def base() -> Iterator[Path]:
    with private_tmp_dir("hllm-st-") as path:
        yield path


@pytest.fixture
def stack_settings(base: Path) -> Iterator[Settings]:
    registry = base / "models.toml"
    registry.write_text(ECHO_REGISTRY)
    settings = Settings(state_dir=base / "state", temporal_port=procs.free_port(), temporal_ui_port=procs.free_port(),
                        postgres_port=procs.free_port(), api_port=procs.free_port(), models_file=registry,
                        task_queue=f"stack-{uuid.uuid4().hex[:8]}")
    yield settings
    _force_down(settings)


def _force_down(settings: Settings) -> None:
    """Stop everything, even after a failed assertion half-way through `up`."""
    for part in (ApiProcess(settings), WorkerProcess(settings), TemporalServer.from_settings(settings),
                 EmbeddedPostgres.from_settings(settings)):
        try:
            part.stop()
        except Exception:  # noqa: BLE001 - best effort, then kill by pid
            pid = part.pid()
            if pid:
                procs.stop_pid(pid, 5)


@pytest.fixture
def foreign_listener() -> Iterator[tuple[int, int]]:
    """Another program listening on a TCP port: (port, pid)."""
    port = procs.free_port()
    code = ("import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); "
            "print('ok', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ok"
        yield port, proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_up_is_idempotent_status_shows_it_and_down_stops_everything(stack_settings: Settings) -> None:
    first = up(stack_settings)
    assert {name: p.state for name, p in first.parts.items()} == {
        "temporal": "running", "postgres": "running", "worker": "running", "api": "running"}
    assert (stack_settings.state_dir / "codec-keys.json").stat().st_mode & 0o777 == 0o600
    assert first.temporal_ui == f"http://127.0.0.1:{stack_settings.temporal_ui_port}"
    assert all(path.is_dir() for path in stack_settings.platform_dirs.values())
    pids = {name: p.pid for name, p in first.parts.items()}
    # The local operator credential: a real key in the keys table, readable by its owner only.
    credential = stack_settings.state_dir / "operator.key"
    assert credential.stat().st_mode & 0o777 == 0o600
    key = credential.read_text()
    assert local_principal(stack_settings).has(AccessRole.OPERATOR, AccessRole.USER)

    again = up(stack_settings)
    assert {name: p.pid for name, p in again.parts.items()} == pids
    assert credential.read_text() == key  # kept, not replaced
    assert {name: p.pid for name, p in status(stack_settings).parts.items()} == pids

    stopped = down(stack_settings)
    assert {p.state for p in stopped.parts.values()} == {"stopped"}
    assert not any(procs.alive(pid) for pid in pids.values())
    assert {p.state for p in down(stack_settings).parts.values()} == {"stopped"}  # down twice is fine


def test_temporal_port_held_by_another_process(base: Path, foreign_listener: tuple[int, int]) -> None:
    port, pid = foreign_listener
    server = TemporalServer(base, port=port, ui_port=procs.free_port())
    with pytest.raises(StackError) as err:
        server.start()
    message = str(err.value)
    assert str(port) in message and f"pid {pid}" in message and psutil.Process(pid).name() in message
    assert "HYBRID_TEMPORAL_PORT" in message
    assert server.pid() is None


async def test_temporal_restart_on_same_db_keeps_history(base: Path) -> None:
    server = TemporalServer(base, port=procs.free_port(), ui_port=procs.free_port(), headless=True)
    running_id, closed_id = f"running-{uuid.uuid4().hex[:8]}", f"closed-{uuid.uuid4().hex[:8]}"
    try:
        server.start()
        client = await Client.connect(server.address)
        for wf_id in (running_id, closed_id):
            await client.start_workflow("NobodyPollsThis", "input", id=wf_id, task_queue="nobody-polls")
        await client.get_workflow_handle(closed_id).terminate("done")
        first_pid = server.pid()
        assert server.stop() and server.pid() is None and not procs.port_accepts(server.port)

        assert server.start() != first_pid
        client = await Client.connect(server.address)
        running = await client.get_workflow_handle(running_id).describe()
        closed = await client.get_workflow_handle(closed_id).describe()
        assert running.status == WorkflowExecutionStatus.RUNNING
        assert closed.status == WorkflowExecutionStatus.TERMINATED
        history = await client.get_workflow_handle(closed_id).fetch_history()
        assert history.events[0].workflow_execution_started_event_attributes.workflow_type.name == "NobodyPollsThis"
    finally:
        server.stop()


def test_external_temporal_unreachable(base: Path) -> None:
    settings = Settings(state_dir=base / "state", temporal_address=f"127.0.0.1:{procs.free_port()}",
                        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    report = status(settings)
    assert report.parts["temporal"].state == "unreachable"
    assert report.parts["postgres"].state == "unreachable"
    assert report.temporal_ui is None
    with pytest.raises(StackError, match="HYBRID_TEMPORAL_ADDRESS"):
        up(settings)


def test_postgres_socket_path_too_long(base: Path) -> None:
    deep = base / ("x" * 60) / ("y" * 60)
    with pytest.raises(StackError, match="HYBRID_STATE_DIR"):
        EmbeddedPostgres(deep, 15432).start()


def test_worker_environment_rebuilds_the_same_settings(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(state_dir=base / "s", temporal_port=17001, task_queue="q", models_file=Path("rel.toml"),
                        llm_max_attempts=7)
    env = settings_env(settings)
    assert env["HF_HUB_OFFLINE"] == "1" and env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert "HYBRID_DATABASE_URL" not in env
    for key in [k for k in os.environ if k.startswith("HYBRID_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("HYBRID_"):
            monkeypatch.setenv(key, value)
    rebuilt = Settings()
    assert rebuilt.model_dump() == settings.model_dump() | {"models_file": Path("rel.toml").resolve()}
