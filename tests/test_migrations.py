"""Alembic migrations on a real embedded PostgreSQL + pgvector."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from hybrid_llm.stack import StackError, migrate, procs

REPO = Path(__file__).resolve().parents[1]


def vector_installed(url: str) -> bool:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM pg_extension WHERE extname = 'vector'")).scalar() == 1
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(scratch_database_url: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    postgres_url = scratch_database_url  # its own database: the session's shared one stays at head
    monkeypatch.chdir(tmp_path)  # works from any directory
    head = migrate.head()
    assert head is not None
    assert migrate.current(postgres_url) is None
    migrate.upgrade(postgres_url)
    assert migrate.current(postgres_url) == head
    assert vector_installed(postgres_url)

    migrate.downgrade(postgres_url, "base")
    assert migrate.current(postgres_url) is None
    assert not vector_installed(postgres_url)

    migrate.upgrade(postgres_url)
    assert migrate.current(postgres_url) == head
    assert vector_installed(postgres_url)
    migrate.upgrade(postgres_url)  # idempotent
    assert migrate.current(postgres_url) == head


def test_alembic_cli_from_repo_root(postgres_url: str) -> None:
    out = subprocess.run([sys.executable, "-m", "alembic", "-x", f"url={postgres_url}", "current"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert migrate.head() in out.stdout


def test_unreachable_database_says_where_and_what_to_do() -> None:
    port = procs.free_port()
    url = f"postgresql+psycopg://alice:s3cret@127.0.0.1:{port}/platform"
    with pytest.raises(StackError) as err:
        migrate.upgrade(url)
    message = str(err.value)
    assert f"127.0.0.1:{port}" in message and "s3cret" not in message
    assert "hybrid-llm up" in message and "HYBRID_DATABASE_URL" in message


def test_invalid_database_url() -> None:
    with pytest.raises(StackError, match="invalid database URL"):
        migrate.current("not a url")
