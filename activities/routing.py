"""Routing support: how close a request is to labelled examples of each capability (embedding similarity)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from temporalio import activity

from activities.embeddings import Embedder
from domain.registry import Capability
from domain.routing import SimilarityRequest, SimilarityResult
from domain.task_exemplars import EXEMPLARS, similarity_scores

if TYPE_CHECKING:
    import numpy as np


class RoutingActivities:
    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._exemplars: dict[Capability, "np.ndarray"] | None = None
        self._lock = threading.Lock()

    def _exemplar_vectors(self) -> dict[Capability, "np.ndarray"]:
        with self._lock:
            if self._exemplars is None:
                self._exemplars = {cap: self.embedder.encode(list(texts)) for cap, texts in EXEMPLARS.items()}
            return self._exemplars

    @activity.defn(name="router.similarity")
    def similarity(self, req: SimilarityRequest) -> SimilarityResult:
        exemplars = self._exemplar_vectors()
        vector = self.embedder.encode([req.text[:2000]])[0]
        best = {cap: float((vectors @ vector).max()) for cap, vectors in exemplars.items()}
        return SimilarityResult(best=best, scores=similarity_scores(best))
