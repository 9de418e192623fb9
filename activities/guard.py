"""Guardrails layer 2: how close a text is to labelled attacks versus harmless look-alikes (MiniLM embeddings). The
judge (a model's second opinion, when the worker's policy names one) is a model call of the workflow, not of this
activity: domain/guardrails/judge.py and workflows/model_call.py.

Score: k-NN margin = mean cosine similarity of the K=3 nearest attack exemplars minus that of the K=3 nearest benign
exemplars (domain/guardrails/exemplars.py). Risk thresholds live in domain/guardrails/semantic.py (THRESHOLDS).

Calibration on tests/guard_corpus (717 commands, 293 prompts; exemplars are not in the corpus), margin quantiles:
  commands: benign p50 -0.003, p90 0.114, p95 0.136, max 0.215; attacks p25 0.011, p50 0.069
            threshold 0.12 -> recall 0.28 / FPR 0.072; 0.15 -> 0.20 / 0.031; 0.20 -> 0.08 / 0.010
  prompts:  benign p50 -0.011, p90 0.093, p95 0.129, max 0.215; attacks p25 0.036, p50 0.083
            threshold 0.12 -> recall 0.36 / FPR 0.058; 0.15 -> 0.20 / 0.008; 0.20 -> 0.075 / 0.008
  Chosen: medium at >= 0.15, high (blocks) at >= 0.22, above every benign look-alike. MiniLM separates attacks
  from look-alikes that were written to resemble them only weakly, so this layer is a second opinion that marks
  paraphrases for review; it never lowers a rule verdict (domain.guardrails.combine).

Blocking work (torch): a sync activity, run by the worker's thread pool.

The learned layer (domain/guardrails/learned.py): logistic-regression heads on MiniLM embeddings of a text's views,
trained by scripts/train_guard_head.py, shipped in activities/guard_model/ (weights .npz + manifest.json with size,
sha256, training-data hash and metrics). `LearnedHeads` verifies every file against the manifest when it loads and
refuses a mismatch (GuardModelError); nothing is fetched from a hub. On by default in the worker's scanner for
prompt-kind scans (see activities/scanning.py); bench/guardrails.py measures its p50 per text.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from temporalio import activity

from activities.embeddings import Embedder
from domain.guardrails import exemplars
from domain.guardrails.learned import Head, LearnedResult, calibrated, risk_of, views
from domain.guardrails.semantic import K, SemanticRequest, SemanticResult, risk_for
from domain.guardrails.verdict import Risk

if TYPE_CHECKING:
    import numpy as np

MAX_CHARS = 2000


MODEL_DIR = Path(__file__).resolve().parent / "guard_model"


class GuardModelError(RuntimeError):
    """The shipped learned-layer artifact is missing or does not match its manifest."""


class LearnedHeads:
    """The shipped heads, each verified against the manifest (size and sha256) before use."""

    def __init__(self, directory: Path = MODEL_DIR) -> None:
        import numpy as np

        try:
            manifest = json.loads((directory / "manifest.json").read_text())
        except (OSError, ValueError) as e:
            raise GuardModelError(f"cannot read {directory / 'manifest.json'}: {e}") from None
        self.manifest = manifest
        self.heads: dict[str, tuple[Head, "np.ndarray", str]] = {}
        for kind, meta in manifest.get("heads", {}).items():
            path = directory / meta["file"]
            try:
                blob = path.read_bytes()
            except OSError as e:
                raise GuardModelError(f"cannot read {path}: {e}") from None
            digest = hashlib.sha256(blob).hexdigest()
            if len(blob) != meta["size"] or digest != meta["sha256"]:
                raise GuardModelError(f"{path} does not match its manifest (size {len(blob)} vs {meta['size']}, "
                                      f"sha256 {digest[:12]} vs {meta['sha256'][:12]})")
            with np.load(io.BytesIO(blob)) as z:
                weights = z["weights"].astype(np.float32)
            head = Head(kind=kind, bias=meta["bias"], combine=meta["combine"], medium_at=meta["medium_at"],
                        block_at=meta["block_at"])
            self.heads[kind] = (head, weights, digest[:12])


class GuardActivities:
    def __init__(self, embedder: Embedder, learned: LearnedHeads | None | bool = True, int8: bool = True) -> None:
        """learned: True loads the shipped heads (default), False turns the learned layer off, or pass heads.
        int8: the learned layer embeds on MiniLM's int8 graph (activities/onnx_encoder.py): half the time of fp32,
        the same test-split figures within one row (bench/guardrails.py --fp32 measures the other)."""
        self.embedder = embedder
        self.int8 = int8
        self.learned_heads = LearnedHeads() if learned is True else (learned or None)
        self._vectors: dict[str, tuple["np.ndarray", "np.ndarray", tuple[str, ...], tuple[str, ...]]] | None = None
        self._lock = threading.Lock()

    def _exemplars(self):
        with self._lock:
            if self._vectors is None:
                self._vectors = {
                    "command": (self.embedder.encode(list(exemplars.COMMAND_ATTACKS)),
                                self.embedder.encode(list(exemplars.COMMAND_BENIGN)),
                                exemplars.COMMAND_ATTACKS, exemplars.COMMAND_BENIGN),
                    "prompt": (self.embedder.encode(list(exemplars.PROMPT_ATTACKS)),
                               self.embedder.encode(list(exemplars.PROMPT_BENIGN)),
                               exemplars.PROMPT_ATTACKS, exemplars.PROMPT_BENIGN),
                }
            return self._vectors

    def score(self, text: str, kind: str) -> tuple[float, str, str]:
        """(margin, nearest exemplar, its label)."""
        attacks, benign, a_text, b_text = self._exemplars()[kind]
        vector = self.embedder.encode([text[:MAX_CHARS]])[0]
        sa, sb = attacks @ vector, benign @ vector
        top_a = sorted(sa.tolist(), reverse=True)[:K]
        top_b = sorted(sb.tolist(), reverse=True)[:K]
        margin = sum(top_a) / len(top_a) - sum(top_b) / len(top_b)
        ia, ib = int(sa.argmax()), int(sb.argmax())
        if sa[ia] >= sb[ib]:
            return margin, a_text[ia], "attack"
        return margin, b_text[ib], "benign"

    def learned_kinds(self) -> set[str]:
        return set(self.learned_heads.heads) if self.learned_heads is not None else set()

    def learned(self, text: str, kind: str, rule_risk: Risk = Risk.NONE) -> LearnedResult | None:
        """The learned layer's opinion of `text` (None when no head for this kind ships)."""
        return self.learned_many([text], kind, [rule_risk])[0]

    def learned_many(self, texts: list[str], kind: str,
                     rule_risks: list[Risk] | None = None) -> list[LearnedResult | None]:
        """learned() for many texts, their views embedded in one batch (`rule_risks`: the rules' risk of each text,
        none when not given)."""
        if self.learned_heads is None or kind not in self.learned_heads.heads:
            return [None] * len(texts)
        head, weights, model_id = self.learned_heads.heads[kind]
        all_views = [views(t) for t in texts]
        flat = [v for vs in all_views for v in vs]
        logits = self.embedder.encode(flat, batch_size=128, fast=self.int8) @ weights + head.bias
        out, i = [], 0
        for n, vs in enumerate(all_views):
            part = logits[i:i + len(vs)]
            i += len(vs)
            best = int(part.argmax())
            p = calibrated(head, float(part[best]), rule_risks[n] if rule_risks is not None else Risk.NONE)
            out.append(LearnedResult(kind=head.kind, logit=round(float(part[best]), 4), probability=round(p, 4),
                                     risk=risk_of(head, p), view=best, evidence=vs[best][:200], model=model_id))
        return out

    @activity.defn(name="guard.semantic")
    def semantic(self, req: SemanticRequest) -> SemanticResult:
        margin, nearest, label = self.score(req.text, req.kind)
        return SemanticResult(risk=risk_for(margin, req.kind), score=round(margin, 4), nearest=nearest, label=label)
