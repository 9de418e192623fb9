"""Principals: API keys (stored only as SHA-256 hashes, with roles, model allowlist, budgets, expiry, revocation)
and the token usage ledger the daily budgets read.

Revision ID: 0006_principals
Revises: 0005_hybrid_search
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_principals"
down_revision: str | Sequence[str] | None = "0005_hybrid_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("roles", postgresql.ARRAY(sa.String(16)), nullable=False),
        sa.Column("models", postgresql.ARRAY(sa.String(64))),
        sa.Column("daily_tokens", sa.BigInteger),
        sa.Column("rpm", sa.Integer),
        sa.Column("key_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", TS),
        sa.Column("revoked_at", TS),
        sa.Column("suspended_at", TS),
        sa.Column("suspended_reason", sa.Text),
        sa.CheckConstraint("octet_length(key_hash) = 32", name="api_keys_sha256"),
    )
    # Who started which workflow (written by the API before it starts one): scopes reads, attributes usage.
    op.create_table(
        "workflow_owners",
        sa.Column("workflow_id", sa.String(256), primary_key=True),
        sa.Column("request_id", sa.String(128), index=True),
        sa.Column("principal_id", sa.String(200), nullable=False, index=True),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    )
    # Every LLM call's tokens (fallbacks and delegations included: they carry the request id), and its cost.
    op.create_table(
        "api_usage",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("principal_id", sa.String(200)),
        sa.Column("request_id", sa.String(128)),
        sa.Column("workflow_id", sa.String(256)),
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
    )
    op.create_index("ix_api_usage_principal_at", "api_usage", ["principal_id", "at"])
    # Requests per minute: one counter per key and minute (shared by every API process).
    op.create_table(
        "api_rate",
        sa.Column("key_id", sa.String(200), primary_key=True),
        sa.Column("window_start", TS, primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_rate")
    op.drop_index("ix_api_usage_principal_at", table_name="api_usage")
    op.drop_table("api_usage")
    op.drop_table("workflow_owners")
    op.drop_table("api_keys")
