"""Hybrid search over the chunks of every document's current version, and retrieval for requests.

One SQL round trip per query (a prepared statement, results in binary): the nearest vectors (HNSW, cosine) and the
best full-text matches (`tsvector` with a GIN index; the query's rarer words OR-ed, ranked by the inverse document
frequency of the words matched) are found in the database, which returns both legs' candidates with their
embeddings and word scores; here they are fused (cosine similarity, computed from those embeddings, + the weighted
share of word weight matched; or reciprocal rank fusion), then maximal marginal relevance and a cap of passages per
document choose the k shown (domain/ranking.py). An optional reranker scores the candidates first.

Flagged chunks (the guardrails found instructions in them at ingestion) are shown by search with their finding,
and left out of a request's context unless the operator allows them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from pgvector import Vector
from pgvector.psycopg.vector import VectorBinaryDumper
from psycopg.rows import namedtuple_row
from psycopg.types import TypeInfo
from psycopg.types.string import ByteaBinaryLoader
from temporalio import activity

from activities.db.models import EMBEDDING_DIMS
from activities.embeddings import Embedder
from activities.rag.rerank import Reranker
from domain.ranking import RankingOptions, diversify
from domain.rag import (
    Finding,
    RetrievedContext,
    RetrieveRequest,
    SearchHit,
    SearchMode,
    SearchQuery,
    SearchResults,
    retrieved,
)

# Each leg over-fetches, then keeps the chunks of current versions (staged chunks of an ingestion in progress
# are skipped). ef_search is the HNSW candidate list: larger = better recall, slower (bench/rag.py at 100,000
# chunks, recall@5 against an exact scan: 0.92 at 40, 0.95 at 60, 0.97 at 80, 0.98 at 100).
# The vector leg searches the half-precision index (migration 0011_halfvec: the expression here must be the
# index's); the candidates' similarity is then computed from their stored full-precision embeddings.
# The full-text leg scores like BM25 without term frequency: the sum of the inverse document frequencies
# (rag_terms) of the query's words a chunk holds. Only the query's `max_terms` rarest words count, and words in
# more than `max_df` of all chunks (and more than 100) do not (they say little and match most chunks).
# Its work is bounded by `text_budget` chunks read: the rarest words whose chunks add up to at most the budget (at
# least the rarest word) find the candidates, in one GIN bitmap scan of their OR, at most `text_budget` of them;
# each candidate is then scored on all the words (its tsvector, already read, against each word). A chunk holding
# only words left out of the OR scores at most the sum of their (small) IDFs, below the candidates holding a rarer
# word; when all the words' chunks fit the budget, the ranking is exact (bench/rag_quality.py: the same figures
# with budgets of 100, 200, 300, 1,000 and unbounded). The budget (200) is most of the leg's cost at scale: on
# bench/rag.py's 100,000 chunks the leg took ~3.2 ms at 500 and ~1.6 ms at 200 (p50).
# When the rarest word alone is in more chunks than the budget, and so many that df^2 > text_budget x chunks (a
# query of common words: at 100,000 chunks and a budget of 200, a word in over ~4,500), a bitmap of all its chunks
# costs more than reading the table from its start until `text_budget` of them are found (GIN checks every posting:
# ~3-5 ms for 10,000): that scan (ts_match_vq, the function behind @@, which no index serves) gives the same rows
# in the same order. synchronize_seqscans is off for the session, so the scan always starts at the table's start.
# The query text is turned into words in a sub-SELECT so that the planner estimates the same with and without
# its value: the prepared statement's generic plan then costs no more than a fresh one and is kept (see
# _search_sql).
# A word becomes a tsquery as a quoted lexeme (quotes and backslashes doubled), never parsed as query syntax.
_SEARCH = r"""
WITH nn AS MATERIALIZED (
    SELECT id, version_id, embedding::halfvec({dims}) <=> CAST(%(q)s AS halfvec({dims})) AS distance
    FROM chunks ORDER BY embedding::halfvec({dims}) <=> CAST(%(q)s AS halfvec({dims})) LIMIT {fetch_vector}
),
vec AS (
    SELECT nn.id, nn.distance, row_number() OVER (ORDER BY nn.distance, nn.id DESC) AS r
    FROM nn JOIN documents d ON d.current_version_id = nn.version_id
),
terms AS MATERIALIZED (
    SELECT s.lexeme, s.chunks AS df, n.chunks AS total, ln(1 + (n.chunks - s.chunks + 0.5) / (s.chunks + 0.5)) AS idf,
           '''' || replace(replace(s.lexeme, '\', '\\'), '''', '''''') || '''' AS literal
    FROM (SELECT DISTINCT unnest(tsvector_to_array((SELECT to_tsvector('english', %(text)s)))) AS lexeme) w
    JOIN rag_terms s ON s.lexeme = w.lexeme AND s.lexeme <> ''
    CROSS JOIN (SELECT greatest(chunks, 1) AS chunks FROM rag_terms WHERE lexeme = '') n
    WHERE {fetch_text} > 0 AND s.chunks > 0 AND s.chunks <= greatest(%(max_df)s * n.chunks, 100)
    ORDER BY idf DESC, s.lexeme LIMIT {max_terms}
),
scored AS MATERIALIZED (SELECT idf, literal::tsquery AS tq FROM terms),
finders AS MATERIALIZED (
    SELECT string_agg(literal, ' | ')::tsquery AS tq,
           max(reach)::float8 * max(reach) > {text_budget}::float8 * max(total) AS dense
    FROM (
        SELECT literal, total, sum(df) OVER w AS reach, row_number() OVER w AS i FROM terms
        WINDOW w AS (ORDER BY idf DESC, lexeme)) t
    WHERE reach <= {text_budget} OR i = 1
),
txt AS MATERIALIZED (
    SELECT id, score, row_number() OVER (ORDER BY score DESC, id DESC) AS r FROM (
        SELECT c.id, sum(s.idf) AS score
        FROM (
            (SELECT id, version_id, tsv FROM chunks
             WHERE NOT (SELECT dense FROM finders) AND tsv @@ (SELECT tq FROM finders) LIMIT {text_budget})
            UNION ALL  -- the same rows, the first in the table's order, found without the index (see above)
            (SELECT id, version_id, tsv FROM chunks
             WHERE (SELECT dense FROM finders) AND ts_match_vq(tsv, (SELECT tq FROM finders)) LIMIT {text_budget})
        ) c
        JOIN documents d ON d.current_version_id = c.version_id
        JOIN scored s ON c.tsv @@ s.tq
        GROUP BY c.id
        ORDER BY score DESC, c.id DESC LIMIT {fetch_text}) best
),
fused AS (
    SELECT id, sum(score) AS score FROM (
        SELECT id, %(vector_weight)s / (%(rrf_k)s + r) AS score FROM vec WHERE r <= {fetch_vector}
        UNION ALL
        SELECT id, %(text_weight)s / (%(rrf_k)s + r) FROM txt WHERE r <= {fetch_text}
    ) legs GROUP BY id
)
SELECT f.id, f.score, vec.r AS vector_rank, txt.r AS text_rank,
       -- every candidate, the vector leg's too, scored on the query's words (the full-text leg's own: already)
       coalesce(coalesce(txt.score, (SELECT sum(s.idf) FROM scored s WHERE c.tsv @@ s.tq))
                / nullif((SELECT sum(idf) FROM terms), 0), 0)::float8 AS text_score,
       c.sha256, c.text, c.position, c.start_line, c.end_line, c.section, c.page, c.flagged, c.finding,
       c.document_id, c.embedding, d.path, v.version, v.sha256 AS version_sha256
FROM fused f
JOIN chunks c ON c.id = f.id
JOIN documents d ON d.current_version_id = c.version_id
JOIN document_versions v ON v.id = c.version_id
LEFT JOIN vec ON vec.id = f.id
LEFT JOIN txt ON txt.id = f.id
ORDER BY f.score DESC, f.id DESC  -- ties (copies of one text): the newest first
"""


@functools.lru_cache(maxsize=64)
def _search_sql(fetch_vector: int, fetch_text: int, text_budget: int, max_terms: int) -> str:
    """The statement with its row limits written in. It is prepared on the server at its first run on a
    connection; with the limits as parameters PostgreSQL would plan it again at every run (its generic plan cannot
    know the LIMITs and looks dearer: ~1-2 ms of planning per query), with them written in it keeps one plan."""
    return _SEARCH.format(fetch_vector=int(fetch_vector), fetch_text=int(fetch_text), text_budget=int(text_budget),
                          max_terms=int(max_terms), dims=EMBEDDING_DIMS)


@dataclass(frozen=True)
class Candidates:
    """The fused candidates, best first: the rows, their embeddings (one row each) and their cosine similarity to
    the query (computed here from the embeddings the rows carry for MMR: the database does not read each candidate's
    out-of-line embedding a second time for it)."""

    rows: list
    vectors: np.ndarray
    similarity: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


class SearchActivities:
    def __init__(self, engine: sa.Engine, embedder: Embedder, ef_search: int = 80,
                 options: RankingOptions | None = None, allow_flagged: bool = False,
                 reranker: Reranker | None = None) -> None:
        self.engine = engine
        self.embedder = embedder
        self.ef_search = ef_search
        self.options = options or RankingOptions()
        self.allow_flagged = allow_flagged
        self.reranker = reranker

    def candidates(self, vector: Sequence[float], text: str, mode: SearchMode = "hybrid") -> Candidates:
        """The fused candidates, best first (one round trip)."""
        o = self.options
        fetch = o.candidates
        fetch_vector = 0 if mode == "text" else fetch
        fetch_text = 0 if mode == "vector" else fetch
        query = np.asarray(vector, dtype=np.float32)
        params = {"q": Vector(query), "text": text if fetch_text else "", "rrf_k": o.rrf_k,
                  "vector_weight": o.vector_weight, "text_weight": o.text_weight, "max_df": o.max_df}
        statement = _search_sql(fetch_vector, fetch_text, o.text_budget if fetch_text else 0, o.max_terms)
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")  # one statement: no BEGIN/COMMIT trips
            _session_setting(conn, "hnsw.ef_search", max(self.ef_search, fetch))
            _session_setting(conn, "synchronize_seqscans", False)  # the full-text leg's scan starts at the start
            vector_oid = _binary_vectors(conn)
            # Results in binary: the embeddings come as pgvector's own bytes (half the size of bytea's hex text,
            # nothing to encode or decode), numbers as numbers.
            with conn.connection.driver_connection.cursor(row_factory=namedtuple_row, binary=True) as cur:
                cur.adapters.register_loader(vector_oid, ByteaBinaryLoader)
                cur.execute(statement, params, prepare=True)
                rows = cur.fetchall()
        vectors = _unpack_all([r.embedding for r in rows], len(query))
        return Candidates(rows, vectors, _cosine(vectors, query))

    def relevance(self, found: Candidates, mode: SearchMode) -> list[float]:
        """rrf: the fused reciprocal-rank score; linear: cosine similarity + text_weight x the share of the query's
        word weight (IDF) the chunk matched (both legs' candidates are scored on both)."""
        o = self.options
        text = np.fromiter((r.text_score for r in found.rows), dtype=np.float64, count=len(found))
        if mode == "vector":
            return found.similarity.tolist()
        if mode == "text":
            return text.tolist()
        if o.fusion == "rrf":
            return [float(r.score) for r in found.rows]
        return (o.vector_weight * found.similarity + o.text_weight * text).tolist()

    def rank(self, query: str, vector: Sequence[float], k: int, mode: SearchMode = "hybrid",
             per_document: int | None = None, include_flagged: bool = True) -> tuple[list[SearchHit], int]:
        """The k hits shown, and how many flagged chunks would have been among them but were left out."""
        found = self.candidates(vector, query, mode)
        rows, similarity = found.rows, found.similarity
        relevance = self.relevance(found, mode)
        if self.reranker is not None and rows:
            relevance = _positive(self.reranker.scores(query, [r.text for r in rows]))
        cap = per_document or self.options.per_document
        vectors = found.vectors if rows else None

        def choose(keep: list[int]) -> list[int]:
            sub = vectors[keep] if vectors is not None else None
            picked = diversify([relevance[i] for i in keep], sub, [rows[i].document_id for i in keep], k, cap,
                               self.options.mmr_lambda, self.options.duplicate_similarity)
            return [keep[i] for i in picked]

        everything = list(range(len(rows)))
        if include_flagged:
            chosen, withheld = choose(everything), 0
        else:
            chosen = choose([i for i in everything if not rows[i].flagged])
            withheld = sum(1 for i in choose(everything) if rows[i].flagged)
        return [_hit(rows[i], relevance[i], similarity[i]) for i in chosen], withheld

    def search_vector(self, vector: Sequence[float], k: int) -> list[SearchHit]:
        """Vector-only top k (no text, no diversity): what bench/rag.py compares with an exact scan."""
        found = self.candidates(vector, "", "vector")
        return [_hit(r, s, s) for r, s in zip(found.rows[:k], found.similarity.tolist())]

    @activity.defn(name="rag.search")
    def search(self, query: SearchQuery) -> SearchResults:
        """The k passages that best match the query by meaning and by words, best first; flagged ones show their
        finding."""
        t0 = time.perf_counter()
        vector = self.embedder.encode([query.query])[0]
        hits, _ = self.rank(query.query, vector.tolist(), query.k, query.mode, query.per_document)
        return SearchResults(query=query.query, results=hits, took_ms=round((time.perf_counter() - t0) * 1000, 2))

    @activity.defn(name="rag.retrieve")
    def retrieve(self, request: RetrieveRequest) -> RetrievedContext:
        """Top-k chunks for a request, with a numbered context block to cite ([1], [2], ...). Flagged chunks are
        left out unless the operator allows them."""
        vector = self.embedder.encode([request.query])[0]
        hits, withheld = self.rank(request.query, vector.tolist(), request.k, request.mode, request.per_document,
                                   include_flagged=self.allow_flagged)
        return retrieved(request.query, hits, withheld)

    def all(self) -> list:
        return [self.search, self.retrieve]


def _session_setting(conn: sa.Connection, name: str, value: int | bool) -> None:
    """SET a setting for the session of this pooled connection, once: the value is remembered with the connection
    (SQLAlchemy clears that memory when the connection is closed), so the search itself is one round trip."""
    known = conn.connection.info.setdefault("search_settings", {})
    if known.get(name) != value:
        conn.exec_driver_sql(f"SET {name} = {('off', 'on')[value] if isinstance(value, bool) else int(value)}")
        known[name] = value


def _binary_vectors(conn: sa.Connection) -> int:
    """Send pgvector `Vector` parameters in binary on this pooled connection (set up once): no text to format here
    and parse in the database. Only parameters of that class are affected. Returns the vector type's oid."""
    info = conn.connection.info
    if "vector_oid" not in info:
        pg = conn.connection.driver_connection
        vector_type = TypeInfo.fetch(pg, "vector")
        if vector_type is None:
            raise RuntimeError("the pgvector extension is not installed in this database")
        pg.adapters.register_dumper(Vector, type("VectorParameter", (VectorBinaryDumper,), {"oid": vector_type.oid}))
        info["vector_oid"] = vector_type.oid
    return info["vector_oid"]


def _unpack_all(raws: list[bytes], dim: int) -> np.ndarray:
    """pgvector's binary form (vector_send), one per row: int16 dimensions, int16 unused, then big-endian float4s."""
    if not raws:
        return np.zeros((0, dim), dtype=np.float32)
    data = np.frombuffer(b"".join(raws), dtype=np.uint8).reshape(len(raws), -1)
    return data[:, 4:].copy().view(">f4").astype(np.float32)


def _cosine(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row to the query, as pgvector's `1 - (a <=> b)` (0 where a norm is 0)."""
    rows, q = vectors.astype(np.float64), query.astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows)) * float(np.sqrt(q @ q))
    dots = rows @ q
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def _positive(scores: list[float]) -> list[float]:
    """Reranker scores (logits, any sign) as positive relevance, order kept."""
    low = min(scores, default=0.0)
    return [s - low + 1e-6 for s in scores]


def _hit(r, score: float, similarity: float) -> SearchHit:
    return SearchHit(chunk_id=r.id, chunk_sha256=r.sha256, text=r.text, score=round(score, 6), source=r.path,
                     version=r.version, version_sha256=r.version_sha256, position=r.position,
                     start_line=r.start_line, end_line=r.end_line, section=r.section, page=r.page,
                     flagged=bool(r.flagged), finding=Finding.model_validate(r.finding) if r.finding else None,
                     vector_rank=r.vector_rank, text_rank=r.text_rank, similarity=round(float(similarity), 6))
