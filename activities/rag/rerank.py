"""Optional reranking of the fused candidates by a cross-encoder (off by default).

No cross-encoder's weights ship on PyPI that we could find (the package lists and the registry's descriptions
were searched, November 2026: rerankers there download their model from a hub at run time, which is not allowed
here). So this is a seam: anything with `scores(query, texts)` can rerank, and `CrossEncoderReranker` loads a
sentence-transformers cross-encoder from a local folder the operator provides (HYBRID_RAG_RERANKER_PATH).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class Reranker(Protocol):
    def scores(self, query: str, texts: list[str]) -> list[float]:
        """One relevance score per text, higher is more relevant (any scale)."""
        ...


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder from a local folder, loaded on first use, never from a hub."""

    def __init__(self, path: Path, max_length: int = 512) -> None:
        self.path = Path(path)
        self.max_length = max_length
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                if not (self.path / "config.json").is_file():
                    raise FileNotFoundError(f"no cross-encoder at {self.path} (config.json missing)")
                from sentence_transformers import CrossEncoder

                self._model = CrossEncoder(str(self.path), max_length=self.max_length, device="cpu",
                                           local_files_only=True)
            return self._model

    def scores(self, query: str, texts: list[str]) -> list[float]:
        if not texts:
            return []
        return [float(s) for s in self._load().predict([(query, t) for t in texts], show_progress_bar=False)]
