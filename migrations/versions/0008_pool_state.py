"""Pool state shared by the workers of a deployment: which worker has which model loaded, busy or cooling down,
so routing sees the pool that will serve a call.

Revision ID: 0008_pool_state
Revises: 0007_approvals
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_pool_state"
down_revision: str | Sequence[str] | None = "0007_approvals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "pool_state",
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("worker_queue", sa.String(300), nullable=False),
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("loaded", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("healthy", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("health_detail", sa.Text),
        sa.Column("in_flight", sa.Integer, nullable=False, server_default="0"),
        sa.Column("memory_bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cooldown_until", TS),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("seen_at", TS, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("worker_queue", "model_id"),
    )
    op.create_index("ix_pool_state_scope_seen", "pool_state", ["scope", "seen_at"])


def downgrade() -> None:
    op.drop_index("ix_pool_state_scope_seen", table_name="pool_state")
    op.drop_table("pool_state")
