"""Guardrails, layer 1 (rules) and the pure half of layer 2: deterministic, no I/O, safe inside workflow code.

    scan_command("rm -rf ~")           -> Verdict(verdict="block", risk=critical, rules=["destructive_delete"], ...)
    scan_text(doc, source="document")  -> Verdict(...)
    combine(verdict, semantic_result)  -> Verdict: raised by a confident semantic layer, never lowered
"""

from domain.guardrails.consequence import Consequence, consequence
from domain.guardrails.scan import scan_command, scan_text
from domain.guardrails.semantic import SemanticRequest, SemanticResult, combine
from domain.guardrails.shell import RULES as COMMAND_RULES
from domain.guardrails.text_rules import RULES as TEXT_RULES
from domain.guardrails.verdict import BLOCK_AT, Risk, RuleHit, Source, Verdict, make_verdict

__all__ = ["BLOCK_AT", "COMMAND_RULES", "Consequence", "consequence",
           "Risk", "RuleHit", "SemanticRequest", "SemanticResult", "Source",
           "TEXT_RULES", "Verdict", "combine", "make_verdict", "scan_command", "scan_text"]
