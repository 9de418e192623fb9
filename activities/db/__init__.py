"""The platform's PostgreSQL: SQLAlchemy models (the schema alembic migrates) and the engine factory."""

from activities.db.engine import make_engine, pipelined
from activities.db.models import Base

__all__ = ["Base", "make_engine", "pipelined"]
