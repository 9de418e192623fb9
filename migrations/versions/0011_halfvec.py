"""The HNSW index of chunk embeddings in half precision: an index on the expression `embedding::halfvec(384)`
(`halfvec_cosine_ops`, same m and ef_construction) replaces the one on the full-precision column. The index is half
the size (100,000 chunks: ~112 MB instead of ~195 MB, so it fits PostgreSQL's shared buffers beside the table),
each distance costs less, and the column itself keeps full precision: search orders its nearest candidates by the
half-precision distance, then scores them with the stored float4 vectors (activities/rag/search.py).

Upgrading a database that already holds chunks builds the new index over all of them (as 0004 did).

Revision ID: 0011_halfvec
Revises: 0010_lockstop
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_halfvec"
down_revision: str | Sequence[str] | None = "0010_lockstop"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Kept in step with activities/db/models.py (ChunkRow's index) and the query in activities/rag/search.py: the
# planner uses the index only for the same expression.
HALF = "(embedding::halfvec(384)) halfvec_cosine_ops"
FULL = "embedding vector_cosine_ops"


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS chunks_embedding_hnsw")
    op.execute(f"CREATE INDEX chunks_embedding_hnsw ON chunks USING hnsw ({HALF}) WITH (m = 16, ef_construction = 128)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS chunks_embedding_hnsw")
    op.execute(f"CREATE INDEX chunks_embedding_hnsw ON chunks USING hnsw ({FULL}) WITH (m = 16, ef_construction = 128)")
