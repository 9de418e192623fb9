"""Lockdown nobody can abuse: the release secret as an Ed25519 public key (scheme column), per-principal
release backoff, per-principal strikes for critical inputs, principal suspensions (the auth check reads them) and
security alerts for operators.

Revision ID: 0010_lockstop
Revises: 0008_pool_state
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_lockstop"
down_revision: str | Sequence[str] | None = "0008_pool_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Rows set before this revision hold a scrypt hash that could mint release tokens: marked legacy.
    op.add_column("lockdown_secret", sa.Column("scheme", sa.String(32), nullable=False,
                                               server_default="scrypt-hmac"))
    op.add_column("lockdown_release_attempts", sa.Column("principal_id", sa.String(200), index=True))
    op.create_table(
        "lockdown_release_backoff",
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("principal_id", sa.String(200), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_at", TS),
    )
    op.create_table(
        "principal_strikes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", TS, nullable=False, server_default=sa.func.now(), index=True),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("principal_id", sa.String(200), nullable=False, index=True),
        sa.Column("workflow_id", sa.String(256)),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_table(
        "principal_suspensions",
        sa.Column("principal_id", sa.String(200), primary_key=True),
        sa.Column("at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("lifted_at", TS),
    )
    op.create_table(
        "security_alerts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", TS, nullable=False, server_default=sa.func.now(), index=True),
        sa.Column("scope", sa.String(200), nullable=False, index=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("principal_id", sa.String(200)),
        sa.Column("message", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("security_alerts")
    op.drop_table("principal_suspensions")
    op.drop_table("principal_strikes")
    op.drop_table("lockdown_release_backoff")
    op.drop_index("ix_lockdown_release_attempts_principal_id", "lockdown_release_attempts")
    op.drop_column("lockdown_release_attempts", "principal_id")
    op.drop_column("lockdown_secret", "scheme")
