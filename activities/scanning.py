"""The guardrails at every scan point: rules (layer 1) and, when asked, the semantic layer (layer 2). The judge (a
model's second opinion) is asked by the workflow through the model-call step, not here (domain/guardrails/judge.py).

Scanning runs in activities so each verdict is recorded in history: replaying an old request after the
rules change gives the recorded verdict, not a new one.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from temporalio import activity

from temporalio.exceptions import ApplicationError

from activities.blobs import BlobStore, resolve_texts
from activities.guard import GuardActivities
from domain.guardrails import SemanticRequest, Verdict, combine, scan_command, scan_text
from domain.guardrails.learned import combine_learned
from domain.scanning import ScanRequest, scan_output


MODEL_WRITTEN = ("model_output", "delegation")


class Scanner:
    def __init__(self, semantic: GuardActivities | None = None, remember: int = 4096) -> None:
        """`remember`: how many recent verdicts are kept, by the sha256 of what was scanned (0: none)."""
        self.semantic_layer = semantic
        self._remember = remember
        self._recent: OrderedDict[bytes, Verdict] = OrderedDict()
        self._lock = threading.Lock()

    def scan(self, req: ScanRequest) -> Verdict:
        """The verdict on `req`. A text scanned before the same way (same kind, source, layers and path) gets the
        same verdict without being scanned again: every layer is a pure function of those, fixed for this worker's
        lifetime. Chat clients send the same system text with every request, and a conversation's earlier turns
        again with each new one."""
        if self._remember <= 0:
            return self._scan(req)
        key = hashlib.sha256(req.model_dump_json(exclude={"text_ref"}).encode()).digest()
        with self._lock:
            known = self._recent.get(key)
            if known is not None:
                self._recent.move_to_end(key)
                return known.model_copy(deep=True)
        verdict = self._scan(req)
        with self._lock:
            self._recent[key] = verdict.model_copy(deep=True)
            while len(self._recent) > self._remember:
                self._recent.popitem(last=False)
        return verdict

    def _scan(self, req: ScanRequest) -> Verdict:
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
    def __init__(self, scanner: Scanner, blobs: BlobStore | None = None) -> None:
        self.scanner = scanner
        self.blobs = blobs

    @activity.defn(name="guard.scan")
    def scan(self, req: ScanRequest) -> Verdict:
        """A text held by reference (`text_ref`) is read from the blob store, here, where it is scanned."""
        if req.text_ref is not None:
            if self.blobs is None:
                raise ApplicationError("this worker has no blob store to resolve text_ref", type="NoBlobStore")
            req = req.model_copy(update={"text": resolve_texts(self.blobs, [req.text_ref])[req.text_ref],
                                         "text_ref": None})
        return self.scanner.scan(req)
