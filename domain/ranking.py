"""Choosing the k passages shown from a fused candidate list: diverse (maximal marginal relevance) and fair to
documents (at most `per_document` passages of one document). Pure: no I/O.

    chosen = diversify(relevance, vectors, documents, k=5, per_document=2, mmr_lambda=0.75)

Near-duplicates (cosine >= 0.95 to a chosen passage, e.g. the same paragraph in two files) are skipped; MMR picks,
one at a time, the candidate with the best `lambda * relevance - (1 - lambda) * max similarity to
what is already picked` (relevance scaled to [0, 1]): a near-duplicate of a picked passage loses to a slightly less
relevant passage that says something else. The chosen passages are returned best first by relevance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

RRF_K = 60


class RankingOptions(BaseModel):
    """How candidates are fused and chosen (the worker's settings; `per_document` per query too).

    fusion "rrf": sum of weight / (rrf_k + rank) over the two legs; "linear": vector_weight x cosine similarity +
    text_weight x the share of the query words' weight (IDF) the chunk matches, computed for every candidate of
    either leg (a learned weighting: the weights were chosen on bench/rag_quality.py's tuning half)."""

    fusion: Literal["rrf", "linear"] = "linear"
    candidates: int = Field(default=40, ge=1, le=1000, description="Passages taken from each of the vector and "
                                                                   "full-text searches before fusing.")
    rrf_k: int = Field(default=RRF_K, ge=1, le=1000)
    vector_weight: float = Field(default=1.0, ge=0.0, le=10.0)
    text_weight: float = Field(default=0.3, ge=0.0, le=10.0)
    per_document: int = Field(default=2, ge=1, le=100)
    mmr_lambda: float = Field(default=0.75, ge=0.0, le=1.0, description="1.0: relevance only, no diversity.")
    duplicate_similarity: float = Field(default=0.95, gt=0.0, le=2.0, description="A candidate this similar "
                                        "(cosine) to a chosen one is a near-duplicate and skipped (2: off).")
    text_budget: int = Field(default=200, ge=100, le=100_000, description="Chunks the full-text leg reads at "
                             "most: its candidates come from the query's rarest words whose chunks add up to this "
                             "(at least the rarest word), and are scored on all its words.")
    max_terms: int = Field(default=8, ge=1, le=64, description="The query's rarest words used by the full-text leg.")
    max_df: float = Field(default=0.2, gt=0.0, le=1.0, description="Words in more than this share of the chunks "
                                                                  "are left out of the full-text leg.")


def diversify(relevance: Sequence[float], vectors: np.ndarray | None, documents: Sequence[object], k: int,
              per_document: int, mmr_lambda: float, duplicate: float = 2.0) -> list[int]:
    """Indices of the chosen candidates, best first by relevance. `vectors` are unit-length rows (None: no
    diversity by similarity, only the per-document cap); a candidate at cosine similarity >= `duplicate` to one
    already chosen is a near-duplicate and never chosen."""
    n = len(relevance)
    if n == 0 or k <= 0:
        return []
    rel = np.asarray(relevance, dtype=np.float64)
    top = rel.max()
    rel = rel / top if top > 0 else rel
    # Similarities to each chosen passage, one row at a time (k matrix-vector products): the full n x n product
    # costs more than the whole choice and, run by a multithreaded BLAS on a busy machine, milliseconds.
    similar = vectors is not None and (mmr_lambda < 1.0 or duplicate <= 1.0)
    # A document that reaches its cap takes all its other candidates out at once (one corpus-wide document would
    # otherwise cost one pass per remaining candidate).
    codes: dict[object, int] = {}
    doc_of = np.fromiter((codes.setdefault(d, len(codes)) for d in documents), dtype=np.int64, count=n)
    per_doc = np.zeros(len(codes), dtype=np.int64)
    chosen: list[int] = []
    max_sim = np.zeros(n)
    available = np.ones(n, dtype=bool)
    while len(chosen) < k and available.any():
        score = mmr_lambda * rel - (1.0 - mmr_lambda) * max_sim if chosen and mmr_lambda < 1.0 else rel.copy()
        score[~available] = -np.inf
        best = int(np.argmax(score))
        available[best] = False
        doc = doc_of[best]
        per_doc[doc] += 1
        if per_doc[doc] >= per_document:
            available &= doc_of != doc
        chosen.append(best)
        if similar:
            row = vectors @ vectors[best]
            max_sim = np.maximum(max_sim, row)
            available &= row < duplicate
    return sorted(chosen, key=lambda i: (-relevance[i], i))
