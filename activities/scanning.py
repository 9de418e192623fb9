"""The guardrails at every scan point: rules (layer 1) and, when asked, the semantic layer (layer 2).

Scanning runs in activities so each verdict is recorded in history: replaying an old request after the
rules change gives the recorded verdict, not a new one.
"""

from __future__ import annotations

from temporalio import activity

from activities.guard import GuardActivities, SecurityModel
from activities.llm_pool import LLMPool
from activities.lockdown_gate import LockdownGate
from domain.guardrails import SemanticRequest, Verdict, combine, scan_command, scan_text
from domain.guardrails.learned import combine_learned
from domain.requests import ChatMessage
from domain.scanning import ScanRequest, scan_output


MODEL_WRITTEN = ("model_output", "delegation")


class Scanner:
    def __init__(self, semantic: GuardActivities | None = None) -> None:
        self.semantic_layer = semantic

    def scan(self, req: ScanRequest) -> Verdict:
        if req.kind == "command":
            rules = scan_command(req.text)
        elif req.source == "model_output":
            rules = scan_output(req.text, path=req.path)  # text rules + command rules on the commands in it
        else:
            rules = scan_text(req.text, source=req.source)
        rules = self.learned(req, rules)
        if not req.semantic or self.semantic_layer is None:
            return rules
        result = self.semantic_layer.semantic(SemanticRequest(text=req.text, kind=req.kind, source=req.source))
        return combine(rules, result)


    def learned(self, req: ScanRequest, rules: Verdict) -> Verdict:
        """The learned layer, on by default for text coming into the platform (user prompts, documents, tool
        output); what models wrote (their output, and the hand-overs between them: a reviewer's findings read like
        instructions) is judged by the rules: the heads were trained on inputs, not on models' work."""
        layer = self.semantic_layer
        if layer is None or req.kind not in layer.learned_kinds() or req.source in MODEL_WRITTEN:
            return rules
        return combine_learned(rules, layer.learned(req.text, req.kind, rules.risk))


class ScanActivities:
    def __init__(self, scanner: Scanner) -> None:
        self.scanner = scanner

    @activity.defn(name="guard.scan")
    def scan(self, req: ScanRequest) -> Verdict:
        return self.scanner.scan(req)


def pool_security_model(pool: LLMPool, gate: LockdownGate, model_id: str) -> SecurityModel:
    """The pool's `security` model as the guardrails' second opinion (layer 2), through the lockdown gate."""
    SCHEMA = {"type": "object", "properties": {"risk": {"type": "string",
                                                        "enum": ["none", "low", "medium", "high", "critical"]},
                                               "reason": {"type": "string"}}, "required": ["risk", "reason"]}

    def ask(prompt: str) -> str:
        pool.ensure_loaded(model_id)
        with pool.in_flight(model_id) as provider, gate.admit(f"a guardrail check by {model_id}"):
            out = provider.complete([ChatMessage(role="user", content=prompt)], 128, 0.0, SCHEMA)
        return out.text

    return ask
