"""Security engine: lockdown state per scope (the gate's source), release secret hash, release attempts,
permission failures. A scope is a deployment's task queue.

Revision ID: 0002_security
Revises: 0001_pgvector
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_security"
down_revision: str | Sequence[str] | None = "0001_pgvector"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "lockdown_state",
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("locked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("reason", sa.Text),
        sa.Column("trigger", sa.String(64)),
        sa.Column("actor", sa.String(200)),
        sa.Column("changed_at", TS),
    )
    op.create_table(
        "lockdown_secret",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("salt", sa.LargeBinary, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("r", sa.Integer, nullable=False),
        sa.Column("p", sa.Integer, nullable=False),
        sa.Column("set_at", TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("id = 1", name="lockdown_secret_singleton"),
    )
    op.create_table(
        "lockdown_release_attempts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", TS, nullable=False, server_default=sa.func.now(), index=True),
        sa.Column("scope", sa.String(200), nullable=False, index=True),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("actor", sa.String(200)),
    )
    op.create_table(
        "permission_failures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", TS, nullable=False, server_default=sa.func.now(), index=True),
        sa.Column("scope", sa.String(200), nullable=False, index=True),
        sa.Column("model_id", sa.String(64), index=True),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("target", sa.Text),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("workflow_id", sa.String(256)),
    )


def downgrade() -> None:
    for table in ("permission_failures", "lockdown_release_attempts", "lockdown_secret", "lockdown_state"):
        op.drop_table(table)
