"""Approval grants: a person's approval bound to what it approves (workflow, operation digest, policy version),
used once, expiring.

Revision ID: 0007_approvals
Revises: 0006_principals
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_approvals"
down_revision: str | Sequence[str] | None = "0006_principals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "approval_grants",
        sa.Column("approval_id", sa.String(64), primary_key=True),
        sa.Column("workflow_id", sa.String(1000), nullable=False),
        sa.Column("operation_sha256", sa.String(64), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("approver_id", sa.String(200), nullable=False),
        sa.Column("approver_name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        sa.Column("used_by", sa.String(1200), comment="run id / activity id of the one call that used it"),
    )
    op.create_index("approval_grants_workflow", "approval_grants", ["workflow_id"])


def downgrade() -> None:
    op.drop_index("approval_grants_workflow", table_name="approval_grants")
    op.drop_table("approval_grants")
