"""Hybrid search and flagged chunks: a full-text `tsvector` beside the embedding (generated from the section path,
the section's lead sentence and the text, weighted in that order, with a GIN index), the lead itself, term
statistics for the inverse document frequency of query words (`rag_terms`), and the guardrails' finding on a chunk
(`flagged` + `finding`: rules, risk and evidence).

Upgrading a database that already holds chunks backfills all of it: PostgreSQL computes the generated column for
every row, the term statistics are counted from it, and the chunks already indexed are scanned here with the rules (`domain.guardrails.scan_text` as a
document), so instructions hidden in documents indexed before this revision are flagged too.

Revision ID: 0005_hybrid_search
Revises: 0004_rag
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR

revision: str = "0005_hybrid_search"
down_revision: str | Sequence[str] | None = "0004_rag"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Kept in step with activities/db/models.py (ChunkRow.tsv) and the query in activities/rag/search.py.
TSV = ("setweight(to_tsvector('english'::regconfig, coalesce(section, '')), 'A') || "
       "setweight(to_tsvector('english'::regconfig, coalesce(lead, '')), 'B') || "
       "to_tsvector('english'::regconfig, text)")
BATCH = 500


def upgrade() -> None:
    op.add_column("chunks", sa.Column("lead", sa.Text))
    op.add_column("chunks", sa.Column("tsv", TSVECTOR, sa.Computed(TSV, persisted=True), nullable=False))
    op.create_index("chunks_tsv_gin", "chunks", ["tsv"], postgresql_using="gin")
    op.add_column("chunks", sa.Column("flagged", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("chunks", sa.Column("finding", JSONB))
    op.create_index("ix_chunks_flagged", "chunks", ["document_id"], postgresql_where=sa.text("flagged"))
    # Term statistics of the searchable chunks (current versions): in how many chunks each lexeme occurs, for the
    # full-text leg's inverse document frequency; the row with lexeme '' holds the number of chunks.
    op.create_table("rag_terms", sa.Column("lexeme", sa.Text, primary_key=True),
                    sa.Column("chunks", sa.BigInteger, nullable=False))
    op.execute("INSERT INTO rag_terms (lexeme, chunks) SELECT word, ndoc FROM ts_stat('SELECT c.tsv FROM chunks c "
               "JOIN documents d ON d.current_version_id = c.version_id')")
    op.execute("INSERT INTO rag_terms (lexeme, chunks) SELECT '', count(*) FROM chunks c "
               "JOIN documents d ON d.current_version_id = c.version_id")
    _flag_existing()


def _flag_existing() -> None:
    """Scan the chunks indexed before this revision (rules only; new chunks go through the worker's scanner)."""
    from domain.guardrails import scan_text
    from domain.rag import finding_of

    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(sa.text("SELECT id, text FROM chunks WHERE id > :last ORDER BY id LIMIT :n"),
                            {"last": last, "n": BATCH}).all()
        if not rows:
            return
        for row in rows:
            finding = finding_of(scan_text(row.text, source="document"))
            if finding is not None:
                conn.execute(sa.text("UPDATE chunks SET flagged = true, finding = CAST(:f AS jsonb) WHERE id = :id"),
                             {"f": finding.model_dump_json(), "id": row.id})
        last = rows[-1].id


def downgrade() -> None:
    op.drop_table("rag_terms")
    op.drop_index("ix_chunks_flagged", table_name="chunks")
    op.drop_column("chunks", "finding")
    op.drop_column("chunks", "flagged")
    op.drop_index("chunks_tsv_gin", table_name="chunks")
    op.drop_column("chunks", "tsv")
    op.drop_column("chunks", "lead")
