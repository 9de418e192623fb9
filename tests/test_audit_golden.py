"""Golden histories (tests/histories/, recorded from real runs by tests/histories/record.py) replay against the
current workflow code: a change that breaks determinism fails here. They also pin what `audit show` reads."""

from __future__ import annotations

import json
from pathlib import Path

from hybrid_llm.audit import replay, timeline
from tests.processes import acli

HISTORIES = Path(__file__).parent / "histories"


def golden(name: str):
    return replay.load_file(HISTORIES / f"{name}.json")


async def test_every_golden_history_replays():
    histories = replay.load_files([HISTORIES])
    result = await replay.verify(histories)
    assert result["failed"] == 0, json.dumps(result["failures"], indent=1)
    types = {timeline.build(h)["workflow_type"] for h in histories}
    assert {"RequestWorkflow", "PermissionWorkflow", "LockdownWorkflow", "PoolWorkflow"} <= types
    assert result["replayed"] == len(histories) >= 12


async def test_cli_verifies_the_golden_directory(settings):
    out = await acli(settings, "audit", "verify", "--dir", str(HISTORIES), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["failed"] == 0


def test_golden_timelines_show_what_happened():
    fallback = timeline.build(golden("request-golden-fallback"))
    kinds = [e["kind"] for e in fallback["entries"]]
    assert kinds.count("routing") == 2 and "model_call_failed" in kinds and "model_call" in kinds
    blocked = timeline.build(golden("request-golden-blocked"))
    assert blocked["status"] == "failed" and blocked["failure"]["type"] == "Blocked"
    assert "model_call" not in [e["kind"] for e in blocked["entries"]]
    large = timeline.build(golden("request-golden-large"))
    call = next(e for e in large["entries"] if e["kind"] == "model_call")
    assert call["messages_ref"] == call["prompt_sha256"] and call["text_ref"]
    paused = [e["kind"] for e in timeline.build(golden("request-golden-lockdown"))["entries"]]
    assert "lockdown_signal" in paused and "lockdown_pause" in paused and "lockdown_resume" in paused
    ask = timeline.build(golden("permission-golden-ask"))
    decision = next(e for e in ask["entries"] if e["kind"] == "permission_decision")
    assert decision["decision"] == "allow" and "golden" in decision["rule"]
    deny = timeline.build(golden("permission-golden-deny"))
    assert next(e for e in deny["entries"] if e["kind"] == "permission_decision")["decision"] == "deny"
    save = timeline.build(golden("request-golden-save"))
    assert [c["workflow_type"] for c in save["children"]] == ["PermissionWorkflow"]
    controller = [e["kind"] for e in timeline.build(golden("lockdown-golden"))["entries"]]
    assert controller.count("update") >= 2  # engage, release
