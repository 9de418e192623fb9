"""RAG on PostgreSQL + pgvector: ingestion (prepare, embed, commit, remove), search and retrieval, context, and
the uploads/ watcher. Versioned uploads themselves live in `activities.uploads`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from activities.embeddings import Embedder
    from activities.uploads import Uploads


def rag_activities(uploads: Uploads, embedder: Embedder) -> list:
    """Every RAG and context activity, bound to the worker's clients (uploads carries the engine and the gate)."""
    from activities.rag.context import ContextActivities
    from activities.rag.ingest import IngestActivities
    from activities.rag.search import SearchActivities

    return [*IngestActivities(uploads.engine, uploads, embedder, uploads.gate).all(),
            *SearchActivities(uploads.engine, embedder).all(),
            *ContextActivities(uploads.engine, uploads.gate).all()]
