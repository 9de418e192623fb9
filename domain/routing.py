"""Deterministic routing: what a task needs, and which model should do it.

The classifier is rules, not a small model's judgement: tiny local models cannot classify
reliably. Callers may pass embedding-similarity scores per capability; they are added to the
rule scores when present.
"""

from __future__ import annotations

import hashlib
import re

from pydantic import BaseModel, Field

from domain.pool import ModelStatus, PoolSnapshot
from domain.registry import Capability

_CODE_RULES: list[tuple[str, float, str]] = [
    (r"```", 3.0, "contains a code block"),
    (r"\b(def|class|import|return|lambda|async|await)\s+\w", 2.0, "contains source code"),
    (r"\b(function|const|let|var)\s+\w+\s*[=(]", 2.0, "contains source code"),
    (r"[{};]\s*$", 0.5, "code-like punctuation"),
    (r"\b(write|implement|refactor|debug|fix|optimi[sz]e|compile|unit[- ]?tests?)\b.{0,40}"
     r"\b(code|function|class|script|program|api|endpoint|module|method|bug|query|regex)\b",
     3.0, "asks for programming work"),
    (r"\b(python|javascript|typescript|rust|golang|java|c\+\+|sql|bash|shell script|html|css|regex|json|yaml)\b",
     1.5, "names a programming language or format"),
    (r"\b(stack ?trace|traceback|exception|segfault|null pointer|compiler error|syntax error)\b",
     2.0, "mentions a program error"),
    (r"\b(api|endpoint|library|framework|algorithm|data structure|git|docker|kubernetes)\b",
     1.0, "mentions software engineering"),
]

_SECURITY_RULES: list[tuple[str, float, str]] = [
    (r"\b(vulnerab\w*|exploit\w*|cve-\d{4}-\d+|owasp|pen(etration)? ?test\w*|threat model\w*)\b",
     3.0, "mentions vulnerabilities or attacks"),
    (r"\b(xss|csrf|sql injection|injection attack|rce|privilege escalation|buffer overflow|ssrf)\b",
     3.0, "names an attack class"),
    (r"\b(security|secure|audit|harden\w*|malware|phishing|ransomware|firewall|cve)\b",
     2.0, "mentions security"),
    (r"\b(password|credential|secret|token|encrypt\w*|decrypt\w*|hash\w*|tls|ssl|certificate|auth\w*)\b",
     1.0, "mentions secrets or authentication"),
    (r"\b(review|check|assess)\b.{0,30}\b(safe|security|risk\w*)\b", 2.0, "asks for a security review"),
]

# A task needs a specialist only when the evidence is clear; otherwise a generalist answers.
SPECIALIST_THRESHOLD = 3.0


class TaskClassification(BaseModel):
    task_type: Capability
    scores: dict[Capability, float]
    reasons: list[str]


class SimilarityRequest(BaseModel):
    text: str


class SimilarityResult(BaseModel):
    best: dict[Capability, float] = Field(description="Best cosine similarity to each capability's examples.")
    scores: dict[Capability, float] = Field(description="Evidence 0..1 per specialist capability for classify().")


class RoutingDecision(BaseModel):
    task_type: Capability
    candidates: list[str] = Field(description="Available models, best first; the first is tried first.")
    chosen: str | None
    reasons: list[str]
    skipped: dict[str, str] = Field(default_factory=dict, description="model id -> why it was not a candidate")
    placement: str | None = Field(default=None, description="the worker queue whose pool serves the chosen "
                                  "model (None: any worker)")


def _score(text: str, rules: list[tuple[str, float, str]]) -> tuple[float, list[str]]:
    score, why = 0.0, []
    for pattern, weight, reason in rules:
        if re.search(pattern, text, flags=re.IGNORECASE | re.MULTILINE):
            score += weight
            if reason not in why:
                why.append(reason)
    return score, why


def classify(prompt: str, similarity: dict[Capability, float] | None = None) -> TaskClassification:
    """Classify by rules, plus optional embedding similarity (0..1 per capability, weighted x4)."""
    code, code_why = _score(prompt, _CODE_RULES)
    sec, sec_why = _score(prompt, _SECURITY_RULES)
    scores = {Capability.GENERAL: 0.0, Capability.CODE: code, Capability.SECURITY: sec}
    reasons: list[str] = []
    if similarity:
        for cap, sim in similarity.items():
            scores[cap] = scores.get(cap, 0.0) + 4.0 * sim
        reasons.append("embedding similarity: " + ", ".join(f"{c.value}={s:.2f}" for c, s in similarity.items()))
    best = max((Capability.SECURITY, Capability.CODE), key=lambda c: (scores[c], c == Capability.SECURITY))
    if scores[best] >= SPECIALIST_THRESHOLD:
        why = sec_why if best == Capability.SECURITY else code_why
        reasons.insert(0, f"{best.value} task (score {scores[best]:.1f}): " + "; ".join(why))
        return TaskClassification(task_type=best, scores=scores, reasons=reasons)
    reasons.insert(0, f"general task (no specialist score reached {SPECIALIST_THRESHOLD:.0f})")
    return TaskClassification(task_type=Capability.GENERAL, scores=scores, reasons=reasons)


def _tiebreak(request_id: str, model_id: str) -> str:
    # Spreads equal candidates across requests deterministically (no shared counter needed).
    return hashlib.sha256(f"{request_id}/{model_id}".encode()).hexdigest()


def _rank_key(status: ModelStatus, request_id: str) -> tuple:
    load = status.in_flight / status.spec.max_concurrency
    saturated = status.in_flight >= status.spec.max_concurrency
    return (not status.spec.local, saturated, not status.loaded, load, _tiebreak(request_id, status.spec.id))


def _best_entry(entries: list[ModelStatus], request_id: str) -> tuple[ModelStatus | None, str | None]:
    """A model's best worker (loaded, free first), or None and why none of its workers can serve it."""
    available = [m for m in entries if m.unavailable_reason() is None]
    if available:
        return min(available, key=lambda m: _rank_key(m, request_id)), None
    if not entries:
        return None, None
    why = [f"{m.unavailable_reason()}" + (f" (on {m.task_queue})" if m.task_queue else "") for m in entries]
    return None, "; ".join(dict.fromkeys(why))


def _placement(best: ModelStatus, entries: list[ModelStatus]) -> str | None:
    """Pin the call to the best entry's worker when the workers differ for this model (loaded on some only, busy,
    or cooling down on some); when every worker would serve it alike, any worker may take it (None)."""
    if best.task_queue is None:
        return None
    alike = all(m.unavailable_reason() is None and m.loaded == best.loaded for m in entries)
    return None if alike else best.task_queue


def route(
    classification: TaskClassification,
    pool: PoolSnapshot,
    request_id: str,
    forced_model: str | None = None,
    excluded: dict[str, str] | None = None,
) -> RoutingDecision:
    """Rank the models able to do the task: local before cloud, free before busy, loaded before cold.

    `excluded` holds models this request already saw fail (model id -> error); they are skipped so
    the caller falls back to the next candidate.
    """
    excluded = excluded or {}
    task = classification.task_type
    reasons = list(classification.reasons)
    skipped: dict[str, str] = {}

    if forced_model is not None:
        entries = [m for m in pool.models if m.spec.id == forced_model]
        why_forced = f"model {forced_model} was requested explicitly"
        best, why = _best_entry(entries, request_id)
        if not entries:
            skipped[forced_model] = "not in the registry"
        elif forced_model in excluded:
            skipped[forced_model] = f"failed: {excluded[forced_model]}"
        elif best is None:
            skipped[forced_model] = why or "unavailable"
        if skipped or best is None:
            return RoutingDecision(task_type=task, candidates=[], chosen=None, skipped=skipped,
                                   reasons=reasons + [why_forced])
        return RoutingDecision(task_type=task, candidates=[forced_model], chosen=forced_model,
                               reasons=reasons + [why_forced], placement=_placement(best, entries))

    able = [m for m in pool.models if task in m.spec.capabilities]
    if not able and task != Capability.GENERAL:
        reasons.append(f"no model has capability {task.value}; falling back to general models")
        able = [m for m in pool.models if Capability.GENERAL in m.spec.capabilities]
    by_model: dict[str, list[ModelStatus]] = {}
    for m in able:
        by_model.setdefault(m.spec.id, []).append(m)
    candidates: list[ModelStatus] = []  # each model's best entry (its best worker)
    for model_id, entries in by_model.items():
        best, why = _best_entry(entries, request_id)
        if model_id in excluded:
            skipped[model_id] = f"failed for this request: {excluded[model_id]}"
        elif best is None:
            skipped[model_id] = why or "unavailable"
        else:
            candidates.append(best)
    candidates.sort(key=lambda m: _rank_key(m, request_id))
    ids = [m.spec.id for m in candidates]
    if candidates:
        top = candidates[0]
        where = "local" if top.spec.local else "cloud"
        state = "loaded" if top.loaded else "not loaded yet"
        reasons.append(
            f"chose {top.spec.id}: {where}, {state}, {top.in_flight}/{top.spec.max_concurrency} in flight"
            + (f", on {place}" if (place := _placement(top, by_model[top.spec.id])) else "")
            + (f"; {len(ids) - 1} fallback(s): {', '.join(ids[1:])}" if len(ids) > 1 else "")
        )
    else:
        reasons.append(f"no available model for {task.value}")
    return RoutingDecision(task_type=task, candidates=ids, chosen=ids[0] if ids else None,
                           reasons=reasons, skipped=skipped,
                           placement=_placement(candidates[0], by_model[ids[0]]) if candidates else None)
