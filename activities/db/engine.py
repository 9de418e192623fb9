"""One SQLAlchemy engine per process, built by the entry point from the database URL."""

from __future__ import annotations

import sqlalchemy as sa


def make_engine(url: str, pool_size: int = 8) -> sa.Engine:
    """psycopg 3 engine; short connect timeout so an unreachable database fails fast and clearly."""
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                            connect_args={"connect_timeout": 5})
