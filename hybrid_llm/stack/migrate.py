"""Run the alembic migrations from code, from any working directory."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from urllib.parse import unquote

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from hybrid_llm.stack.errors import StackError


def script_location() -> Path:
    """The installed `migrations` package (a namespace package in some editable installs: no __file__)."""
    spec = importlib.util.find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the `migrations` package is not installed; reinstall hybrid-llm-platform")
    return Path(list(spec.submodule_search_locations)[0])


def safe_url(url: str) -> str:
    """The URL with its password masked, fit for messages."""
    try:
        return unquote(sa.make_url(url).render_as_string(hide_password=True))
    except sa.exc.ArgumentError:
        return "<invalid database URL>"


def engine(url: str, timeout_s: int = 5) -> sa.Engine:
    try:
        return sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": timeout_s})
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as e:
        raise StackError(f"invalid database URL {safe_url(url)}: {e}; "
                         "expected e.g. postgresql+psycopg://user@host:5432/dbname") from None


def check_reachable(url: str, timeout_s: int = 5) -> None:
    """Connect once; raise StackError saying what to do when the database cannot be reached."""
    eng = engine(url, timeout_s)
    try:
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as e:
        reason = str(e.orig or e).strip().splitlines()[0] if (e.orig or e) else "unknown error"
        raise StackError(f"cannot reach the database at {safe_url(url)}: {reason}; run `hybrid-llm up` for the "
                         "embedded PostgreSQL, or check HYBRID_DATABASE_URL and that its server is running") from None
    finally:
        eng.dispose()


def _config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    cfg.attributes["url"] = url
    return cfg


def head() -> str | None:
    return ScriptDirectory.from_config(_config("")).get_current_head()


def upgrade(url: str, revision: str = "head") -> None:
    check_reachable(url)
    command.upgrade(_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    check_reachable(url)
    command.downgrade(_config(url), revision)


def current(url: str) -> str | None:
    """The database's revision (None before the first migration)."""
    check_reachable(url)
    eng = engine(url)
    try:
        with eng.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        eng.dispose()
