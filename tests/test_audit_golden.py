"""Golden histories (tests/histories/, recorded from real runs by tests/histories/record.py) replay against the
current workflow code: a change that breaks determinism fails here. They also pin what `audit show` reads."""

from __future__ import annotations

import json
from pathlib import Path

from hybrid_llm.audit import replay, timeline
from hybrid_llm.codec import read_keyring
from tests.processes import acli

HISTORIES = Path(__file__).parent / "histories"
# The recordings are sealed, like every history: with this test-only key (tests/histories/record.py makes it).
GOLDEN_KEYS = HISTORIES.parent / "golden-codec-keys.json"
KEYRING = read_keyring(GOLDEN_KEYS)


def golden(name: str):
    return replay.load_file(HISTORIES / f"{name}.json")


def build(name: str) -> dict:
    return timeline.build(golden(name), KEYRING)


def histories():
    return replay.load_files([HISTORIES])


async def test_every_golden_history_replays():
    recorded = histories()
    result = await replay.verify(recorded, keyring=KEYRING)
    assert result["failed"] == 0, json.dumps(result["failures"], indent=1)
    types = {timeline.build(h, KEYRING)["workflow_type"] for h in recorded}
    assert {"RequestWorkflow", "PermissionWorkflow", "LockdownWorkflow", "PoolWorkflow"} <= types
    assert result["replayed"] == len(recorded) >= 12


async def test_golden_histories_do_not_open_without_their_key():
    """Sealed: replayed with another deployment's key, nothing decodes (so nothing replays)."""
    from hybrid_llm.codec import Keyring

    result = await replay.verify(histories()[:3], keyring=Keyring.generate("other"))
    assert result["failed"] == 3


async def test_cli_verifies_the_golden_directory(settings):
    out = await acli(settings, "audit", "verify", "--dir", str(HISTORIES), "--json",
                     HYBRID_CODEC_KEYS_FILE=str(GOLDEN_KEYS))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["failed"] == 0


def test_golden_timelines_show_what_happened():
    fallback = build("request-golden-fallback")
    kinds = [e["kind"] for e in fallback["entries"]]
    assert kinds.count("routing") == 2 and "model_call_failed" in kinds and "model_call" in kinds
    blocked = build("request-golden-blocked")
    assert blocked["status"] == "failed" and blocked["failure"]["type"] == "Blocked"
    assert "model_call" not in [e["kind"] for e in blocked["entries"]]
    large = build("request-golden-large")
    call = next(e for e in large["entries"] if e["kind"] == "model_call")
    assert call["messages_ref"] == call["prompt_sha256"] and call["text_ref"]
    paused = [e["kind"] for e in build("request-golden-lockdown")["entries"]]
    assert "lockdown_signal" in paused and "lockdown_pause" in paused and "lockdown_resume" in paused
    ask = build("permission-golden-ask")
    decision = next(e for e in ask["entries"] if e["kind"] == "permission_decision")
    assert decision["decision"] == "allow" and "golden" in decision["rule"]
    deny = build("permission-golden-deny")
    assert next(e for e in deny["entries"] if e["kind"] == "permission_decision")["decision"] == "deny"
    save = build("request-golden-save")
    assert [c["workflow_type"] for c in save["children"]] == ["PermissionWorkflow"]
    controller = [e["kind"] for e in build("lockdown-golden")["entries"]]
    assert controller.count("update") >= 2  # engage, release
