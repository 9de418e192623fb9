"""Measure the guardrails on the labelled corpus (tests/guard_corpus): recall per category, false positives, speed.

Prints misses and false positives to stderr, and one JSON object as the last line of stdout:
  commands / prompts: {recall, fpr, attacks, benign, per_category: {category: recall}}
  scans_per_s: rule-layer scans per second over the whole corpus
  semantic (with --semantic): the same figures after combining with the MiniLM layer, and its ms per scan

Usage: python bench/guardrails.py [--semantic] [--verbose]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from domain.guardrails import Risk, combine, scan_command, scan_text  # noqa: E402

CORPUS = ROOT / "tests" / "guard_corpus"


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (CORPUS / name).read_text().splitlines() if line.strip()]


def scan(row: dict, kind: str):
    return scan_command(row["text"]) if kind == "command" else scan_text(row["text"], row.get("source", "user"))


def figures(rows: list[dict], verdicts: list, verbose: bool, label: str) -> dict:
    per = defaultdict(lambda: [0, 0])
    fp = benign = 0
    for row, v in zip(rows, verdicts):
        if row["label"] == "attack":
            per[row["category"]][1] += 1
            per[row["category"]][0] += v.verdict == "block"
            if v.verdict != "block" and verbose:
                print(f"MISS {label} [{row['category']}] {v.risk} {row['text'][:140]!r}", file=sys.stderr)
        else:
            benign += 1
            fp += v.verdict == "block"
            if (v.verdict == "block" or v.risk > Risk.LOW) and verbose:
                print(f"FP   {label} {v.risk} {v.rules} {row['text'][:140]!r}", file=sys.stderr)
    attacks = sum(t for _, t in per.values())
    return {"recall": round(sum(h for h, _ in per.values()) / max(1, attacks), 4), "fpr": round(fp / max(1, benign), 4),
            "attacks": attacks, "benign": benign,
            "per_category": {c: round(h / t, 3) for c, (h, t) in sorted(per.items())}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--semantic", action="store_true", help="also run the MiniLM layer (loads torch)")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args()
    out: dict = {}
    total, t0 = 0, time.perf_counter()
    results = {}
    for kind, name in (("command", "commands.jsonl"), ("prompt", "prompts.jsonl")):
        rows = load(name)
        verdicts = [scan(r, kind) for r in rows]
        total += len(rows)
        results[kind] = (rows, verdicts)
        out[kind + "s"] = figures(rows, verdicts, args.verbose, kind)
    out["scans_per_s"] = round(total / (time.perf_counter() - t0), 1)
    if args.semantic:
        from activities.embeddings import Embedder
        from activities.guard import GuardActivities
        from domain.guardrails import SemanticRequest

        guard = GuardActivities(Embedder())
        guard.semantic(SemanticRequest(text="warm up"))
        sem: dict = {}
        t0, n = time.perf_counter(), 0
        for kind, (rows, verdicts) in results.items():
            combined = []
            for row, v in zip(rows, verdicts):
                s = guard.semantic(SemanticRequest(text=row["text"], kind=kind, source=row.get("source", "user")))
                n += 1
                combined.append(combine(v, s))
            sem[kind + "s"] = figures(rows, combined, args.verbose, kind + "+semantic")
        sem["ms_per_scan"] = round((time.perf_counter() - t0) * 1000 / max(1, n), 2)
        out["semantic"] = sem
    print(json.dumps(out))


if __name__ == "__main__":
    main()
