"""Benchmark RAG: ingestion against raw embedding speed, and top-k search on 100,000 chunks.

Prints progress to stderr and one JSON object as the last line of stdout:
  ingest_ratio   chunks/s of a whole ingestion (versioned upload + IngestWorkflow: chunk, embed in batches, stage,
                 commit with the HNSW index present) / chunks/s of sentence-transformers encoding the same chunks
                 alone, in the same run (best of --rounds each, interleaved)
  query_ms_p50, query_ms_p99   the platform's hybrid query (one SQL round trip: HNSW top-N on the half-precision
                 index + full-text top-N, joined to current versions, then fused, MMR and the per-document cap; k=5;
                 the query's embedding is not included) on --corpus chunks bulk-loaded by COPY, then indexed (HNSW +
                 GIN), at the search activity's ef_search (--ef to change it)
  vector_query_ms_p50, vector_query_ms_p99   the vector leg alone, same queries (the baseline in this run)
  text_query_ms_p50, text_query_ms_p99   the full-text leg alone (mode "text"), same queries
  text_hits_top5   queries with a full-text match among the hybrid top 5
  load_average_1m   the machine's load when the search figures were done (they are wall-clock times)
  hnsw_recall_at_5_vs_exact   the vector leg's top 5 against an exact scan (numpy, same vectors): how much the
                 approximate index loses. It says nothing about whether the right passage is found: that is
                 bench/rag_quality.py's job.

The 100,000 vectors are built from real MiniLM embeddings of 3,000 generated sentences (mixtures of two plus
noise of norm ~0.2, normalised), so they have the clustered structure of text embeddings; the queries are built the
same way. Each chunk's text is 3-8 real sentences drawn from the Python standard library's docstrings (the corpus
of bench/rag_quality.py), so the full-text leg sees a real vocabulary; each query's text is 4-9 words of another
such sentence (common words included: the full-text leg's hardest case, many matching chunks).

Usage: python bench/rag.py [--chunks 512] [--corpus 100000] [--queries 300] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from activities.db import make_engine  # noqa: E402
from activities.db.models import EMBEDDING_DIMS  # noqa: E402
from activities.embeddings import Embedder  # noqa: E402
from activities.llm_pool import LLMPool  # noqa: E402
from activities.rag.search import SearchActivities  # noqa: E402
from domain.chunking import chunk  # noqa: E402
from domain.registry import Capability, ModelSpec, Registry  # noqa: E402
from hybrid_llm import rag_client  # noqa: E402
from hybrid_llm.settings import Settings  # noqa: E402
from hybrid_llm.temporal import connect, ensure_search_attributes  # noqa: E402
from worker import build_worker  # noqa: E402
from bench.stack import bench_stack  # noqa: E402

WORDS = ("system network model data query index vector search document version upload chunk embed store "
         "worker workflow signal timer retry lock database table column row engine cluster memory disk cache "
         "river mountain forest ocean city bridge garden library market kitchen window engine train planet "
         "music painting theatre novel poem history science biology chemistry physics weather climate energy "
         "quickly slowly carefully rarely often always never together apart inside outside above below").split()


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def document(n: int, seed: int) -> str:
    """n paragraphs of ~900 characters: the text chunker makes one chunk of each."""
    rng = random.Random(seed)
    paras = []
    for i in range(n):
        words: list[str] = [f"Passage {seed}-{i}."]
        while sum(len(w) + 1 for w in words) < 900:
            sentence = [rng.choice(WORDS) for _ in range(rng.randint(6, 14))]
            words.append(" ".join(sentence).capitalize() + ".")
        paras.append(" ".join(words))
    return "\n\n".join(paras) + "\n"


async def ingest_ratio(settings: Settings, embedder: Embedder, engine: sa.Engine, n: int, rounds: int) -> dict:
    client = await connect(settings)
    await ensure_search_attributes(client, settings.temporal_namespace)
    pool = LLMPool(Registry(models=(ModelSpec(id="none", provider="scripted", local=True,
                                              capabilities=tuple(Capability)),)))
    uploads = rag_client.build_uploads(settings, engine=engine)
    embedder.encode(["warm up"] * 8)
    encode_rates, ingest_rates = [], []
    async with build_worker(client, settings, pool, embedder=embedder, engine=engine):
        for r in range(rounds):
            text = document(n, seed=1000 + r)
            chunks = chunk("text", text)
            t0 = time.perf_counter()
            embedder.encode([c.embed_text for c in chunks], batch_size=64)
            encode_rates.append(len(chunks) / (time.perf_counter() - t0))
            fresh = document(n, seed=2000 + r)  # different text: no embedding is reused from the baseline run
            t0 = time.perf_counter()
            _, handle = await rag_client.upload(client, settings, uploads, f"bench/doc{r}.txt", fresh.encode())
            result = await rag_client.wait(handle)
            ingest_rates.append(result.chunks / (time.perf_counter() - t0))
            say(f"round {r}: encode {encode_rates[-1]:.1f} chunks/s, ingest {ingest_rates[-1]:.1f} chunks/s "
                f"({result.chunks} chunks)")
    enc, ing = max(encode_rates), max(ingest_rates)
    return {"chunks": len(chunks), "encode_chunks_per_s": round(enc, 1), "ingest_chunks_per_s": round(ing, 1),
            "ingest_ratio": round(ing / enc, 3)}


def corpus_vectors(embedder: Embedder, n: int, seed: int, noise: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = embedder.encode(sentences(3000, seed), batch_size=64).astype(np.float32)
    a = rng.integers(0, len(base), n)
    b = rng.integers(0, len(base), n)
    w = rng.uniform(0.2, 0.8, (n, 1)).astype(np.float32)
    v = base[a] * (1 - w) + base[b] * w + rng.normal(0, noise, (n, base.shape[1])).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))).capitalize() + "." for _ in range(n)]


def real_sentences() -> list[str]:
    from bench.rag_quality import corpus

    out = []
    for text in corpus().values():
        for para in text.split("\n\n"):
            flat = " ".join(para.split())
            out += [s for s in re.split(r"(?<=[.!?])\s+", flat) if 40 <= len(s) <= 300 and s.count(" ") >= 5]
    return out


def chunk_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pool = real_sentences()
    return [" ".join(rng.choice(pool) for _ in range(rng.randint(3, 8))) for _ in range(n)]


def query_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pool = real_sentences()
    out = []
    for _ in range(n):
        words = re.findall(r"[A-Za-z]+", rng.choice(pool))
        start = rng.randint(0, max(0, len(words) - 4))
        out.append(" ".join(words[start:start + rng.randint(4, 9)]))
    return out


def bulk_load(engine: sa.Engine, vectors: np.ndarray, texts: list[str]) -> None:
    from pgvector.psycopg import register_vector

    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE chunks, document_versions, documents RESTART IDENTITY CASCADE"))
        conn.execute(sa.text("DROP INDEX IF EXISTS chunks_embedding_hnsw"))
        conn.execute(sa.text("DROP INDEX IF EXISTS chunks_tsv_gin"))
        doc = conn.execute(sa.text("INSERT INTO documents (path) VALUES ('uploads/bench/corpus.txt') RETURNING id"))
        doc_id = doc.scalar_one()
        ver = conn.execute(sa.text("INSERT INTO document_versions (document_id, version, sha256, size, kind, source, "
                                   "status, chunks) VALUES (:d, 1, :s, 0, 'text', 'upload', 'indexed', :n) "
                                   "RETURNING id"), {"d": doc_id, "s": "0" * 64, "n": len(vectors)}).scalar_one()
        conn.execute(sa.text("UPDATE documents SET current_version_id = :v WHERE id = :d"), {"v": ver, "d": doc_id})
    raw = engine.raw_connection()
    try:
        pg = raw.driver_connection
        register_vector(pg)
        t0 = time.perf_counter()
        with pg.cursor() as cur, cur.copy("COPY chunks (id, document_id, version_id, position, sha256, text, "
                                          "start_line, end_line, embedding) FROM STDIN WITH (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "int8", "int8", "int4", "varchar", "text", "int4", "int4", "vector"])
            for i, v in enumerate(vectors):
                cp.write_row([i + 1, doc_id, ver, i, f"{i:064x}", texts[i], 1, 1, v])
        pg.commit()
        say(f"bulk load: {len(vectors)} rows in {time.perf_counter() - t0:.1f}s")
        t0 = time.perf_counter()
        with pg.cursor() as cur:
            cur.execute("SET maintenance_work_mem = '1GB'")
            cur.execute("SET max_parallel_maintenance_workers = 2")
            cur.execute("CREATE INDEX chunks_embedding_hnsw ON chunks USING hnsw "
                        f"((embedding::halfvec({EMBEDDING_DIMS})) halfvec_cosine_ops) "
                        "WITH (m = 16, ef_construction = 128)")  # as migration 0011 builds it
            cur.execute("CREATE INDEX chunks_tsv_gin ON chunks USING gin (tsv)")  # as migration 0005 builds it
            cur.execute("TRUNCATE rag_terms")  # the term statistics ingestion's commit keeps, counted at once
            cur.execute("INSERT INTO rag_terms (lexeme, chunks) SELECT word, ndoc FROM ts_stat('SELECT tsv FROM chunks') "
                        "UNION ALL SELECT '', count(*) FROM chunks")
        pg.commit()
        say(f"HNSW build: {time.perf_counter() - t0:.1f}s")
        # A table in use has been vacuumed: the visibility map and hint bits are set and autovacuum has nothing
        # left to do. Without this, autovacuum's pass over the fresh 100,000 rows (and the first reads setting
        # hint bits, WAL-logged with data checksums) can land in the middle of the timed queries.
        pg.autocommit = True
        with pg.cursor() as cur:
            cur.execute("VACUUM (ANALYZE) chunks")
            cur.execute("VACUUM (ANALYZE) rag_terms")
        pg.autocommit = False
    finally:
        raw.close()


def p99(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.99 * len(values))) - 1)]


def search_figures(engine: sa.Engine, embedder: Embedder, n: int, queries: int, ef: int | None) -> dict:
    vectors = corpus_vectors(embedder, n, seed=7)
    t0 = time.perf_counter()
    texts = chunk_texts(n, seed=7)
    say(f"chunk texts: {time.perf_counter() - t0:.1f}s")
    bulk_load(engine, vectors, texts)
    qs = corpus_vectors(embedder, queries, seed=8)
    qtexts = query_texts(queries, seed=8)
    search = SearchActivities(engine, embedder) if ef is None else SearchActivities(engine, embedder, ef_search=ef)
    for q, t in zip(qs[:20], qtexts[:20]):  # warm the index pages and the connection pool
        search.rank(t, q.tolist(), 5)
    hybrid, vector, text, found, text_hits = [], [], [], [], 0
    for q, t in zip(qs, qtexts):  # interleaved: all see the same machine load
        t0 = time.perf_counter()
        hits, _ = search.rank(t, q.tolist(), 5)
        hybrid.append((time.perf_counter() - t0) * 1000)
        text_hits += any(h.text_rank is not None for h in hits)
        t0 = time.perf_counter()
        search.rank(t, q.tolist(), 5, mode="text")
        text.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        nearest = search.search_vector(q.tolist(), 5)
        vector.append((time.perf_counter() - t0) * 1000)
        found.append({h.chunk_id for h in nearest})
    # The exact scan after the timed loop: numpy's multithreaded BLAS over 100,000 vectors between two timed
    # queries would compete with PostgreSQL for the cores (its threads spin a while after each product).
    recalls = [len(set((np.argsort(-(vectors @ q))[:5] + 1).tolist()) & ids) / 5 for q, ids in zip(qs, found)]
    say(f"hybrid search on {n} chunks: p50 {statistics.median(hybrid):.2f} ms, p99 {p99(hybrid):.2f} ms; vector "
        f"leg alone p50 {statistics.median(vector):.2f} ms, p99 {p99(vector):.2f} ms; full-text leg alone p50 "
        f"{statistics.median(text):.2f} ms, p99 {p99(text):.2f} ms; HNSW recall@5 vs exact "
        f"{statistics.mean(recalls):.3f}; queries with a full-text match in the top 5: {text_hits}/{len(qs)}")
    return {"corpus": n, "queries": queries, "ef_search": search.ef_search,
            "query_ms_p50": round(statistics.median(hybrid), 2), "query_ms_p99": round(p99(hybrid), 2),
            "vector_query_ms_p50": round(statistics.median(vector), 2), "vector_query_ms_p99": round(p99(vector), 2),
            "text_query_ms_p50": round(statistics.median(text), 2), "text_query_ms_p99": round(p99(text), 2),
            "hybrid_over_vector_p99": round(p99(hybrid) / p99(vector), 2),
            "hnsw_recall_at_5_vs_exact": round(statistics.mean(recalls), 4),
            "text_hits_top5": text_hits, "load_average_1m": round(os.getloadavg()[0], 2)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=512)
    parser.add_argument("--corpus", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ef", type=int, default=None, help="hnsw.ef_search (default: the search activity's)")
    args = parser.parse_args()
    embedder = Embedder()
    async with bench_stack("rag") as stack:
        engine = make_engine(stack.settings.effective_database_url)
        try:
            figures = await ingest_ratio(stack.settings, embedder, engine, args.chunks, args.rounds)
            figures |= await asyncio.to_thread(search_figures, engine, embedder, args.corpus, args.queries,
                                               args.ef)
        finally:
            engine.dispose()
    targets = {"ingest_ratio": ">= 0.85", "query_ms_p99": "<= 20", "hnsw_recall_at_5_vs_exact": ">= 0.95"}
    print(json.dumps({**figures, "targets": targets}))


if __name__ == "__main__":
    asyncio.run(main())
