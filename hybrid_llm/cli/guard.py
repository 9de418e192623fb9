"""`hybrid-llm guard scan`: run the guardrails over JSON lines on stdin, one JSON verdict per line on stdout.

Commands are judged by the rules (no torch is imported). Prompts are judged by the rules and the learned layer (a
head on MiniLM embeddings shipped in activities/guard_model/; loading MiniLM takes about 5 s per process), combined
as the worker's scanner does; `--no-learned` gives the rules alone. `--semantic` adds the k-NN similarity opinion.
Each hit carries its evidence when there is one: `span` (offsets in the scanned text) and `evidence` (that text).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated

import typer

from hybrid_llm.cli.common import CLIError


class Kind(StrEnum):
    command = "command"
    prompt = "prompt"


class SourceOpt(StrEnum):
    user = "user"
    model_output = "model_output"
    document = "document"
    tool_output = "tool_output"
    delegation = "delegation"


def register(app: typer.Typer) -> None:
    guard = typer.Typer(no_args_is_help=True, help="Guardrails: scan commands and prompts.")
    app.add_typer(guard, name="guard")

    @guard.command()
    def scan(
        kind: Annotated[Kind, typer.Option(help="What each line's text is: a shell command or a prompt.")],
        source: Annotated[SourceOpt, typer.Option(help="Where prompt text comes from (weights hidden instructions "
                                                       "in documents and tool output higher).")] = SourceOpt.user,
        semantic: Annotated[bool, typer.Option("--semantic/--rules-only",
                                               help="Also run the MiniLM similarity layer (loads torch, ~5 s).")]
        = False,
        learned: Annotated[bool, typer.Option("--learned/--no-learned",
                                              help="Prompts: also run the learned layer (loads MiniLM, ~5 s).")]
        = True,
    ) -> None:
        """Read JSON lines {"text": ...} on stdin; print {"verdict", "risk", "rules", ...} per line."""
        from domain.guardrails import combine, scan_command, scan_text

        layer2 = None
        layer_learned = None
        if learned and kind == Kind.prompt:
            from activities.embeddings import Embedder
            from activities.guard import GuardActivities, GuardModelError
            from domain.guardrails.learned import combine_learned

            try:
                heads = GuardActivities(Embedder())
            except GuardModelError as e:
                raise CLIError(f"the learned layer cannot load: {e} (use --no-learned for the rules alone)",
                               code=1) from None

            def layer_learned(text: str, v):
                return combine_learned(v, heads.learned(text, kind.value, v.risk))
        if semantic:
            from activities.embeddings import Embedder
            from activities.guard import GuardActivities
            from domain.guardrails import SemanticRequest

            guard_acts = GuardActivities(Embedder())

            def layer2(text: str, src: str):
                return guard_acts.semantic(SemanticRequest(text=text, kind=kind.value, source=src))

        try:
            lines = sys.stdin
            for n, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                print(json.dumps(_one(line, n, kind.value, source.value, layer2, scan_command, scan_text, combine,
                                      layer_learned), ensure_ascii=False), flush=False)
        except (OSError, UnicodeDecodeError) as e:
            raise CLIError(f"cannot read stdin: {e}", code=1) from None
        sys.stdout.flush()


def _one(line: str, n: int, kind: str, source: str, layer2, scan_command, scan_text, combine,
         layer_learned=None) -> dict:
    try:
        item = json.loads(line)
    except ValueError as e:
        return {"error": f"line {n}: not JSON: {e}"}
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        return {"error": f"line {n}: expected an object with a string \"text\""}
    text = item["text"]
    src = item.get("source", source)
    if src not in ("user", "model_output", "document", "tool_output", "delegation"):
        src = source
    v = scan_command(text) if kind == "command" else scan_text(text, src)
    if layer_learned is not None and src != "model_output":
        v = layer_learned(text, v)
    out: dict = {}
    if layer2 is not None:
        s = layer2(text, src)
        v = combine(v, s)
        out["semantic"] = {"risk": s.risk.value, "score": s.score, "nearest": s.nearest, "label": s.label}
    result = {"verdict": v.verdict, "risk": v.risk.value, "rules": v.rules,
              "hits": [{"rule": h.rule, "risk": h.risk.value, "detail": h.detail}
                       | ({"span": list(h.span)} if h.span is not None else {})
                       | ({"evidence": h.evidence} if h.evidence is not None else {})
                       | ({"score": h.score} if h.score is not None else {}) for h in v.hits]}
    if "id" in item:
        result["id"] = item["id"]
    return result | out
