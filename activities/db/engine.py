"""One SQLAlchemy engine per process, built by the entry point from the database URL."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import psycopg
import sqlalchemy as sa

# libpq >= 14 can pipeline (the psycopg[binary] wheel bundles one); older ones send statements one by one.
_PIPELINE = psycopg.Pipeline.is_supported()


def make_engine(url: str, pool_size: int = 8) -> sa.Engine:
    """psycopg 3 engine; short connect timeout so an unreachable database fails fast and clearly."""
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                            connect_args={"connect_timeout": 5})


def pipelined(raw: psycopg.Connection) -> AbstractContextManager:
    """Statements sent inside this block go in one round trip where libpq can pipeline (hot paths: the lockdown
    gate, the usage row); where it cannot, they run one by one, with the same results."""
    return raw.pipeline() if _PIPELINE else nullcontext()
