"""Alembic environment. The database URL comes from, in order:
`config.attributes["url"]` (hybrid_llm.stack.migrate), `alembic -x url=...`, then Settings (HYBRID_* / hybrid.toml).
"""

from __future__ import annotations

from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

from activities.db.models import Base  # noqa: E402  (the schema the revisions build; for --autogenerate)

target_metadata = Base.metadata


def database_url() -> str:
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return url
    from hybrid_llm.settings import Settings  # an entry point: settings are built here, not at import

    return Settings().effective_database_url


def _check_reachable(url: str) -> None:
    """A one-line failure for the alembic command line instead of a driver traceback."""
    from alembic.util import CommandError

    from hybrid_llm.stack import StackError, migrate

    try:
        migrate.check_reachable(url)
    except StackError as e:
        raise CommandError(str(e)) from None


def run_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = database_url()
    _check_reachable(url)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            context.configure(connection=conn, target_metadata=target_metadata)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
