"""The two entry points: `scan_command` for shell commands and `scan_text` for prompts and other text.

Both normalise first, bound their work (long inputs are scanned in windows), look inside embedded encodings, and
never raise: an internal error becomes a medium-risk `scanner_error` hit.
"""

from __future__ import annotations

import re

from domain.guardrails import normalize as norm
from domain.guardrails.shell import analyze, parse

from domain.guardrails.text_rules import TRIGGER, scan_text_rules
from domain.guardrails.verdict import RuleHit, Risk, Source, Verdict, make_verdict

MAX_WHOLE = 32_768  # scanned in full up to this length
WINDOW = 2_048
MAX_WINDOWS = 48
MAX_COMMAND = 16_384

_FORK_RE = re.compile(r"(\S+)\s*\(\s*\)\s*\{[^}]*\1\s*\|\s*\1\s*&[^}]*\}\s*;?\s*\1|"
                      r"\$0\s*&\s*\$0|(?:bash|sh|\$0)\s*\|\s*(?:bash|sh|\$0)\s*&")
_SUSPICIOUS = re.compile(r"\$\((?!\()|`|\beval\b|base64|/dev/(?:tcp|udp|sd)|\brm\b|\bdd\b|mkfs|\bcurl\b|\bwget\b|\bnc\b|"
                         r"\\x[0-9a-f]{2}|\bchmod\b|\bsudo\b|>\s*/", re.I)


def _error_verdict(e: BaseException) -> Verdict:
    return make_verdict([RuleHit(rule="scanner_error", risk=Risk.MEDIUM, detail=f"{type(e).__name__}: {e}"[:200])])


def _obfuscation_hits(n: norm.Normalized) -> list[RuleHit]:
    hits = []
    if n.tag_text:
        hits.append(RuleHit(rule="tag_smuggling", risk=Risk.HIGH,
                            detail=f"hidden Unicode tag text: {n.tag_text[:80]!r}"))
    if n.invisible:
        hits.append(RuleHit(rule="invisible_characters", risk=Risk.LOW, detail=f"{n.invisible} invisible characters"))
    if n.homoglyphs:
        hits.append(RuleHit(rule="homoglyphs", risk=Risk.LOW, detail=f"{n.homoglyphs} look-alike letters"))
    return hits


def _raise_if_obfuscated(hits: list[RuleHit], n: norm.Normalized) -> list[RuleHit]:
    """Hiding a finding with invisible characters or look-alikes is itself a sign of intent: one level up."""
    if not (n.invisible or n.homoglyphs or n.tag_text):
        return hits
    return [h.model_copy(update={"risk": h.risk.raised()}) if h.risk >= Risk.MEDIUM and h.rule not in
            ("tag_smuggling", "encoded_payload") else h for h in hits]


def _windows(text: str) -> list[tuple[int, str]]:
    """Bounded pieces of a long text, with their offsets: its head, its tail, and windows around trigger words."""
    if len(text) <= MAX_WHOLE:
        return [(0, text)]
    tail = len(text) - MAX_WHOLE // 4
    out = [(0, text[:MAX_WHOLE // 2]), (tail, text[tail:])]
    last_end = -1
    for m in TRIGGER.finditer(text, MAX_WHOLE // 2, tail):
        if m.start() < last_end:
            continue
        lo = max(0, m.start() - WINDOW // 2)
        out.append((lo, text[lo:lo + WINDOW]))
        last_end = lo + WINDOW
        if len(out) >= MAX_WINDOWS:
            break
    return out


def _shift(hits: list[RuleHit], offset: int, text: str) -> list[RuleHit]:
    """Spans relative to the whole scanned text; evidence filled from it."""
    out = []
    for h in hits:
        if h.span is not None:
            a, b = h.span[0] + offset, h.span[1] + offset
            h = h.model_copy(update={"span": (a, b), "evidence": h.evidence or text[a:b][:200]})
        out.append(h)
    return out


def _command_hits(text: str, depth: int = 0) -> list[RuleHit]:
    hits: list[RuleHit] = []
    if len(text) > MAX_COMMAND:
        hits.append(RuleHit(rule="oversized_input", risk=Risk.MEDIUM,
                            detail=f"command of {len(text)} characters; the first {MAX_COMMAND} were parsed"))
    parsed = parse(text[:MAX_COMMAND], depth)
    hits += analyze(parsed, depth)
    if parsed.fallback and _FORK_RE.search(text[:MAX_COMMAND]):
        hits.append(RuleHit(rule="fork_bomb", risk=Risk.CRITICAL, detail="a function that pipes into itself"))
    if parsed.fallback and _SUSPICIOUS.search(text):
        hits.append(RuleHit(rule="unparsed_command", risk=Risk.MEDIUM,
                            detail="could not parse the command and it contains risky constructs"))
    return hits


def _decoded_hits(text: str, depth: int, kind: str, source: str) -> list[RuleHit]:
    hits = []
    for enc, decoded in norm.decoded_payloads(text):
        inner = norm.normalize(decoded).text
        found = _command_hits(inner, depth + 1) if kind == "command" else []
        found += scan_text_rules(inner, source) if kind == "text" else []
        if kind == "text":
            found += [h for h in _command_hits(inner, depth + 1) if h.risk >= Risk.HIGH]
        worst = max((h.risk for h in found), default=Risk.NONE)
        if worst >= Risk.MEDIUM:
            rules = ",".join(dict.fromkeys(h.rule for h in found if h.risk >= Risk.MEDIUM))
            hits.append(RuleHit(rule="encoded_payload", risk=max(worst, Risk.HIGH),
                                detail=f"{enc} hides {rules}: {decoded[:60]!r}", evidence=decoded[:200]))
    return hits


def scan_command(text: str) -> Verdict:
    """Judge a shell command by what it does. Deterministic; never raises."""
    try:
        n = norm.normalize(text if isinstance(text, str) else str(text))
        hits = _shift(_command_hits(n.text), 0, n.text)
        hits += _decoded_hits(n.text, 0, "command", "user")
        if n.tag_text:
            hits += [h.model_copy(update={"detail": "in tag characters: " + h.detail, "span": None,
                                          "evidence": n.tag_text[:200]})
                     for h in _command_hits(n.tag_text, 1)]
        obf = _obfuscation_hits(n)
        hits = _raise_if_obfuscated(hits, n) + obf
        return make_verdict(hits, n.text if n.text != text else None)
    except Exception as e:  # noqa: BLE001 - a scanner must answer
        return _error_verdict(e)


def scan_text(text: str, source: Source = "user") -> Verdict:
    """Detect prompt injection and jailbreaks in text from `source`. Deterministic; never raises."""
    try:
        n = norm.normalize(text if isinstance(text, str) else str(text))
        hits: list[RuleHit] = []
        pieces = _windows(n.text)
        if len(pieces) > 1:
            hits.append(RuleHit(rule="oversized_input", risk=Risk.LOW,
                                detail=f"{len(n.text)} characters scanned in {len(pieces)} windows"))
        for offset, piece in pieces:
            hits += _shift(scan_text_rules(piece, source), offset, n.text)
            hits += _decoded_hits(piece, 0, "text", source)
            for how, plain in norm.deobfuscated(piece[:MAX_WHOLE]):
                for h in scan_text_rules(plain, source):
                    if h.risk >= Risk.HIGH:
                        hits.append(RuleHit(rule="encoded_payload", risk=h.risk, detail=f"{how} hides {h.rule}: "
                                                                                        f"{h.detail[:60]!r}",
                                            evidence=plain[:200]))
            rot = norm.rot13(piece[:MAX_WHOLE])
            for h in scan_text_rules(rot, source) if rot != piece else []:
                if h.risk >= Risk.HIGH and h.detail[:40] not in piece:
                    hits.append(RuleHit(rule="encoded_payload", risk=h.risk, detail=f"rot13 hides {h.rule}: "
                                                                                    f"{h.detail[:60]!r}"))
        if n.tag_text:
            for h in scan_text_rules(n.tag_text, source):
                hits.append(h.model_copy(update={"detail": "in tag characters: " + h.detail, "span": None,
                                                 "evidence": n.tag_text[:200]}))
        hits = _raise_if_obfuscated(hits, n) + _obfuscation_hits(n)
        return make_verdict(hits, n.text if n.text != text else None)
    except Exception as e:  # noqa: BLE001 - a scanner must answer
        return _error_verdict(e)
