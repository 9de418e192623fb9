"""Alembic migrations of the platform's PostgreSQL schema (run them with `hybrid_llm.stack.migrate`)."""
