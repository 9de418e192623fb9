"""RAG and context: documents, their versions, chunks with vector(384) + an HNSW cosine index, global and
per-model context.

Revision ID: 0004_rag
Revises: 0003_blobs
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector

revision: str = "0004_rag"
down_revision: str | Sequence[str] | None = "0003_blobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "documents",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("path", sa.Text, nullable=False, unique=True),
        sa.Column("current_version_id", sa.BigInteger),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "document_versions",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("document_id", sa.BigInteger, sa.ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("size", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("kind", sa.String(16)),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="stored"),
        sa.Column("chunks", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("document_id", "version", name="document_versions_doc_version"),
    )
    op.create_foreign_key("documents_current_version_fk", "documents", "document_versions",
                          ["current_version_id"], ["id"], ondelete="SET NULL")
    op.create_table(
        "chunks",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("document_id", sa.BigInteger, sa.ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version_id", sa.BigInteger, sa.ForeignKey("document_versions.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("section", sa.Text),
        sa.Column("start_line", sa.Integer, nullable=False),
        sa.Column("end_line", sa.Integer, nullable=False),
        sa.Column("page", sa.Integer),
        sa.Column("embedding", Vector(384), nullable=False),
        sa.UniqueConstraint("version_id", "position", name="chunks_version_position"),
    )
    op.create_index("ix_chunks_document_id", "chunks", ["document_id"])
    op.create_index("ix_chunks_sha256", "chunks", ["sha256"])
    op.create_index("chunks_embedding_hnsw", "chunks", ["embedding"], postgresql_using="hnsw",
                    postgresql_ops={"embedding": "vector_cosine_ops"},
                    postgresql_with={"m": 16, "ef_construction": 128})
    op.create_table(
        "global_context",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_by", sa.String(200)),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "model_context",
        sa.Column("model_id", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_by", sa.String(200)),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("model_context")
    op.drop_table("global_context")
    op.drop_table("chunks")
    op.drop_constraint("documents_current_version_fk", "documents", type_="foreignkey")
    op.drop_table("document_versions")
    op.drop_table("documents")
