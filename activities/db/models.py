"""Tables (SQLAlchemy 2). Alembic revisions in migrations/ create them; keep the two in step."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class LockdownStateRow(Base):
    """The gate's source of truth: one row per deployment (scope = its task queue), written by the lockdown
    controller before it acknowledges."""

    __tablename__ = "lockdown_state"

    scope: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    locked: Mapped[bool] = mapped_column(default=False)
    epoch: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    trigger: Mapped[str | None] = mapped_column(sa.String(64))
    actor: Mapped[str | None] = mapped_column(sa.String(200))
    changed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class LockdownSecretRow(Base):
    """The release secret, only as a salted scrypt hash."""

    __tablename__ = "lockdown_secret"

    id: Mapped[int] = mapped_column(primary_key=True, default=1)
    salt: Mapped[bytes] = mapped_column(sa.LargeBinary)
    hash: Mapped[bytes] = mapped_column(sa.LargeBinary)
    n: Mapped[int]
    r: Mapped[int]
    p: Mapped[int]
    set_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    # `scrypt-ed25519`: `hash` is the Ed25519 public key of the scrypt seed (cannot sign); `scrypt-hmac`: legacy.
    scheme: Mapped[str] = mapped_column(sa.String(32), server_default="scrypt-hmac")
    __table_args__ = (sa.CheckConstraint("id = 1", name="lockdown_secret_singleton"),)


class ReleaseAttemptRow(Base):
    __tablename__ = "lockdown_release_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now(), index=True)
    scope: Mapped[str] = mapped_column(sa.String(200), index=True)
    epoch: Mapped[int] = mapped_column(sa.BigInteger)
    ok: Mapped[bool]
    actor: Mapped[str | None] = mapped_column(sa.String(200))
    principal_id: Mapped[str | None] = mapped_column(sa.String(200), index=True)


class ReleaseBackoffRow(Base):
    """Wrong release secrets in a row, per principal: one principal's guesses never delay another."""

    __tablename__ = "lockdown_release_backoff"

    scope: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    principal_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    next_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class PrincipalStrikeRow(Base):
    """A critical guardrail hit in a principal's own input (the request fails; no lockdown)."""

    __tablename__ = "principal_strikes"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now(), index=True)
    scope: Mapped[str] = mapped_column(sa.String(200))
    principal_id: Mapped[str] = mapped_column(sa.String(200), index=True)
    workflow_id: Mapped[str | None] = mapped_column(sa.String(256))
    reason: Mapped[str] = mapped_column(sa.Text)


class PrincipalSuspensionRow(Base):
    """A suspended principal: the API's auth check refuses its key while `lifted_at` is null."""

    __tablename__ = "principal_suspensions"

    principal_id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    reason: Mapped[str] = mapped_column(sa.Text)
    by: Mapped[str] = mapped_column(sa.String(200))
    lifted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class SecurityAlertRow(Base):
    """Something operators must look at (a principal suspended, ...): shown by `lockdown status`."""

    __tablename__ = "security_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now(), index=True)
    scope: Mapped[str] = mapped_column(sa.String(200), index=True)
    kind: Mapped[str] = mapped_column(sa.String(64))
    principal_id: Mapped[str | None] = mapped_column(sa.String(200))
    message: Mapped[str] = mapped_column(sa.Text)


class PermissionFailureRow(Base):
    """Every denied permission request, counted per model and globally for the lockdown trigger."""

    __tablename__ = "permission_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now(), index=True)
    scope: Mapped[str] = mapped_column(sa.String(200), index=True)
    model_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    operation: Mapped[str] = mapped_column(sa.String(16))
    target: Mapped[str | None] = mapped_column(sa.Text)
    reason: Mapped[str] = mapped_column(sa.Text)
    workflow_id: Mapped[str | None] = mapped_column(sa.String(256))


class BlobRow(Base):
    """Content-addressed store for large texts (prompts, outputs): history keeps only the sha256."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    content: Mapped[bytes] = mapped_column(sa.LargeBinary)
    media_type: Mapped[str] = mapped_column(sa.String(100), default="text/plain; charset=utf-8")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


# RAG (migration 0004_rag) ------------------------------------------------------------------------------------
from pgvector.sqlalchemy import Vector  # noqa: E402
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR  # noqa: E402

EMBEDDING_DIMS = 384
# The full-text vector of a chunk: section path (weight A), lead sentence (B), text (D); as migration 0005 makes it.
CHUNK_TSV = ("setweight(to_tsvector('english'::regconfig, coalesce(section, '')), 'A') || "
             "setweight(to_tsvector('english'::regconfig, coalesce(lead, '')), 'B') || "
             "to_tsvector('english'::regconfig, text)")


class DocumentRow(Base):
    """A file under uploads/; `current_version_id` is the version search answers from (None: not indexed)."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    path: Mapped[str] = mapped_column(sa.Text, unique=True)
    current_version_id: Mapped[int | None] = mapped_column(
        sa.BigInteger, sa.ForeignKey("document_versions.id", use_alter=True, ondelete="SET NULL",
                                     name="documents_current_version_fk"))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class DocumentVersionRow(Base):
    """Every stored content of a path (content-addressed blob in uploads/.versions/<sha256>), or a deletion."""

    __tablename__ = "document_versions"

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    document_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey("documents.id", ondelete="CASCADE"))
    version: Mapped[int]
    sha256: Mapped[str | None] = mapped_column(sa.String(64))
    size: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    kind: Mapped[str | None] = mapped_column(sa.String(16))
    source: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16), default="stored")
    chunks: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    __table_args__ = (sa.UniqueConstraint("document_id", "version", name="document_versions_doc_version"),)


class ChunkRow(Base):
    __tablename__ = "chunks"

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    document_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey("documents.id", ondelete="CASCADE"),
                                             index=True)
    version_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey("document_versions.id",
                                                                         ondelete="CASCADE"))
    position: Mapped[int]
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    text: Mapped[str] = mapped_column(sa.Text)
    section: Mapped[str | None] = mapped_column(sa.Text)
    start_line: Mapped[int]
    end_line: Mapped[int]
    page: Mapped[int | None]
    embedding = mapped_column(Vector(EMBEDDING_DIMS), nullable=False)
    # migration 0005_hybrid_search: full text beside the vector, and the guardrails' finding on the chunk
    lead: Mapped[str | None] = mapped_column(sa.Text)  # the first sentence of its section, when not in `text`
    tsv = mapped_column(TSVECTOR, sa.Computed(CHUNK_TSV, persisted=True), nullable=False)
    flagged: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    finding = mapped_column(JSONB)  # domain.rag.Finding: risk, rules, evidence
    __table_args__ = (
        sa.UniqueConstraint("version_id", "position", name="chunks_version_position"),
        sa.Index("chunks_tsv_gin", "tsv", postgresql_using="gin"),
        sa.Index("ix_chunks_flagged", "document_id", postgresql_where=sa.text("flagged")),
        # migration 0011_halfvec: the HNSW index holds the embeddings in half precision (the column keeps float4)
        sa.Index("chunks_embedding_hnsw", sa.text(f"(embedding::halfvec({EMBEDDING_DIMS})) halfvec_cosine_ops"),
                 postgresql_using="hnsw", postgresql_with={"m": 16, "ef_construction": 128}),
    )


class RagTermRow(Base):
    """In how many searchable chunks (of current versions) a lexeme occurs; lexeme '' counts the chunks
    (migration 0005_hybrid_search; kept by ingestion's commit and remove)."""

    __tablename__ = "rag_terms"

    lexeme: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    chunks: Mapped[int] = mapped_column(sa.BigInteger)


class GlobalContextRow(Base):
    """Shared context: system state, cross-model alerts, persistent conversation history."""

    __tablename__ = "global_context"

    key: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)
    updated_by: Mapped[str | None] = mapped_column(sa.String(200))
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class ModelContextRow(Base):
    """One model's context: current task, working memory."""

    __tablename__ = "model_context"

    model_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)
    updated_by: Mapped[str | None] = mapped_column(sa.String(200))
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class PoolStateRow(Base):
    """What each worker's LLM pool holds (one row per worker queue and model), published by that worker and read
    by routing on every worker of the deployment (scope = the shared task queue). Rows not seen for a while are
    a gone worker's, and ignored."""

    __tablename__ = "pool_state"

    scope: Mapped[str] = mapped_column(sa.String(200))
    worker_queue: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    model_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    loaded: Mapped[bool] = mapped_column(default=False)
    healthy: Mapped[bool] = mapped_column(default=True)
    health_detail: Mapped[str | None] = mapped_column(sa.Text)
    in_flight: Mapped[int] = mapped_column(default=0)
    memory_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    cooldown_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    failures: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    seen_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
