"""The pure parts of answer streaming: offsets, reassembly, batching and prefix skipping."""

from __future__ import annotations

from activities.providers.base import cut_at_stop, skip_prefix
from domain.streaming import AnswerChunk, Batcher, assemble, new_text, seed_for


def test_overlapping_chunks_yield_each_character_once():
    chunks = [AnswerChunk(start=0, text="Hello"), AnswerChunk(start=3, text="lo, wor"), AnswerChunk(start=10, text="ld")]
    assert assemble(chunks) == "Hello, world"
    assert new_text(AnswerChunk(start=0, text="Hello"), 5) == ""
    assert new_text(AnswerChunk(start=3, text="lo, wor"), 5) == ", wor"


def test_batches_the_first_piece_at_once_then_by_time_or_count():
    b = Batcher(interval_s=0.1, max_pieces=3)
    assert b.add("a", now=0.0) == "a"  # time to first token
    assert b.add("b", now=0.01) is None
    assert b.add("c", now=0.02) is None
    assert b.add("d", now=0.03) == "bcd"  # three pieces
    assert b.add("e", now=0.05) is None
    assert b.add("f", now=0.2) == "ef"  # the interval passed
    assert b.take(now=0.3) is None
    assert b.add("g", now=0.25) is None
    assert b.take(now=0.32) == "g"  # the end of generation flushes the rest


def test_costly_batches_come_less_often():
    """A batch whose scan took 10 ms holds the next one back until the scans are at most 5% of the time."""
    b = Batcher(interval_s=0.1, max_pieces=3, busy_share=0.05)
    assert b.add("a", now=0.0) == "a"
    b.spent(0.010)  # -> 200 ms between batches
    assert b.add("b", now=0.05) is None
    assert b.add("c", now=0.12) is None
    assert b.add("d", now=0.15) is None  # three pieces and the interval, but not yet 200 ms
    assert b.add("e", now=0.21) == "bcde"
    b.spent(0.001)  # a cheap scan: back to the interval and the piece count
    assert b.add("f", now=0.25) is None
    assert b.add("g", now=0.32) == "fg"


def test_skip_prefix_passes_on_only_what_follows_it():
    seen: list[str] = []
    forward = skip_prefix("Hello, ", lambda piece: seen.append(piece) or True)
    for piece in ["Hel", "lo", ", w", "orld"]:
        assert forward(piece)
    assert "".join(seen) == "world"


def test_stop_sequences_cut_at_the_first_one():
    assert cut_at_stop("one two STOP three END", ["END", "STOP"]) == ("one two ", True)
    assert cut_at_stop("no stops", ["X"]) == ("no stops", False)


def test_the_seed_is_stable_per_request():
    assert seed_for("abc") == seed_for("abc") != seed_for("abd")


def test_litellm_streams_through_its_offline_mock():
    from activities.providers.litellm_provider import LiteLLMProvider
    from domain.registry import ModelSpec
    from domain.requests import ChatMessage

    from domain.registry import Capability

    spec = ModelSpec(id="mocked", provider="litellm", model="openai/gpt-4o-mini", local=False, api_base="http://x",
                     capabilities=(Capability.GENERAL,),
                     options={"mock_response": "The tide turns twice a day."})
    pieces: list[str] = []
    out = LiteLLMProvider(spec).stream([ChatMessage(role="user", content="tides?")], 50, 0.0,
                                       on_text=lambda p: pieces.append(p) or True)
    assert out.text == "The tide turns twice a day." == "".join(pieces)
    assert len(pieces) > 1
    resumed: list[str] = []
    again = LiteLLMProvider(spec).stream([ChatMessage(role="user", content="tides?")], 50, 0.0, prefix="The tide ",
                                         on_text=lambda p: resumed.append(p) or True)
    assert "".join(resumed) == "turns twice a day." and again.text == out.text
