"""Top-k search over the chunks of every document's current version (HNSW, cosine), and retrieval for requests."""

from __future__ import annotations

import time
from collections.abc import Sequence

import sqlalchemy as sa
from temporalio import activity

from activities.embeddings import Embedder
from domain.rag import RetrievedContext, RetrieveRequest, SearchHit, SearchQuery, SearchResults, retrieved

# The index scan over-fetches (staged chunks of an ingestion in progress are skipped after it); ef_search is
# the HNSW candidate list: larger = better recall, slower.
_SEARCH = sa.text("""
WITH nn AS MATERIALIZED (
    SELECT id, version_id, embedding <=> CAST(:q AS vector) AS distance
    FROM chunks ORDER BY embedding <=> CAST(:q AS vector) LIMIT :fetch
)
SELECT nn.id, nn.distance, c.sha256, c.text, c.position, c.start_line, c.end_line, c.section, c.page,
       d.path, v.version, v.sha256 AS version_sha256
FROM nn
JOIN documents d ON d.current_version_id = nn.version_id
JOIN document_versions v ON v.id = nn.version_id
JOIN chunks c ON c.id = nn.id
ORDER BY nn.distance, nn.id
LIMIT :k
""")


def vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


class SearchActivities:
    def __init__(self, engine: sa.Engine, embedder: Embedder, ef_search: int = 100) -> None:
        self.engine = engine
        self.embedder = embedder
        self.ef_search = ef_search

    def search_vector(self, vector: Sequence[float], k: int) -> list[SearchHit]:
        fetch = max(4 * k, 40)
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"SET LOCAL hnsw.ef_search = {max(self.ef_search, fetch)}"))
            rows = conn.execute(_SEARCH, {"q": vector_literal(vector), "fetch": fetch, "k": k}).all()
        return [SearchHit(chunk_id=r.id, chunk_sha256=r.sha256, text=r.text, score=round(1.0 - float(r.distance), 6),
                          source=r.path, version=r.version, version_sha256=r.version_sha256, position=r.position,
                          start_line=r.start_line, end_line=r.end_line, section=r.section, page=r.page)
                for r in rows]

    @activity.defn(name="rag.search")
    def search(self, query: SearchQuery) -> SearchResults:
        """The k chunks closest in meaning to the query, best first."""
        t0 = time.perf_counter()
        vector = self.embedder.encode([query.query])[0]
        hits = self.search_vector(vector.tolist(), query.k)
        return SearchResults(query=query.query, results=hits, took_ms=round((time.perf_counter() - t0) * 1000, 2))

    @activity.defn(name="rag.retrieve")
    def retrieve(self, request: RetrieveRequest) -> RetrievedContext:
        """Top-k chunks for a request, with a numbered context block to cite ([1], [2], ...)."""
        vector = self.embedder.encode([request.query])[0]
        return retrieved(request.query, self.search_vector(vector.tolist(), request.k))

    def all(self) -> list:
        return [self.search, self.retrieve]
