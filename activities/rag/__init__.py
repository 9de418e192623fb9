"""RAG on PostgreSQL + pgvector: ingestion (prepare, embed, commit, remove), search and retrieval, context, and
the uploads/ watcher. Versioned uploads themselves live in `activities.uploads`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from activities.embeddings import Embedder
    from activities.scanning import Scanner
    from activities.uploads import Uploads
    from hybrid_llm.settings import Settings


def rag_activities(uploads: Uploads, embedder: Embedder, settings: Settings | None = None,
                   scanner: Scanner | None = None) -> list:
    """Every RAG and context activity, bound to the worker's clients (uploads carries the engine and the gate).
    Chunks are scanned at ingestion by the worker's guardrails `scanner` (the rules alone without one)."""
    from activities.rag.context import ContextActivities
    from activities.rag.ingest import IngestActivities

    scan = None
    if scanner is not None:
        from domain.scanning import ScanRequest

        def scan(text: str):
            return scanner.scan(ScanRequest(text=text, kind="prompt", source="document"))

    flag_at = settings.rag_flag_at if settings is not None else "medium"
    return [*IngestActivities(uploads.engine, uploads, embedder, uploads.gate, scan=scan, flag_at=flag_at).all(),
            *search_activities(uploads.engine, embedder, settings).all(),
            *ContextActivities(uploads.engine, uploads.gate).all()]


def search_activities(engine, embedder: Embedder, settings: Settings | None = None):
    """Search as the settings configure it (defaults without settings)."""
    from activities.rag.search import SearchActivities
    from domain.ranking import RankingOptions

    if settings is None:
        return SearchActivities(engine, embedder)
    options = RankingOptions(fusion=settings.rag_fusion, candidates=settings.rag_candidates, vector_weight=settings.rag_vector_weight,
                             text_weight=settings.rag_text_weight, per_document=settings.rag_per_document,
                             mmr_lambda=settings.rag_mmr_lambda)
    reranker = None
    if settings.rag_reranker_path is not None:
        from activities.rag.rerank import CrossEncoderReranker

        reranker = CrossEncoderReranker(settings.rag_reranker_path)
    return SearchActivities(engine, embedder, options=options, allow_flagged=settings.rag_allow_flagged,
                            reranker=reranker)
