"""Embedding-similarity routing with the real MiniLM model: it catches what keyword rules miss."""

from __future__ import annotations

import pytest

from activities.routing import RoutingActivities
from domain.registry import Capability
from domain.routing import SimilarityRequest, classify
from tests.conftest import scripted
from tests.helpers import ask_and_wait

# Held out: none of these is in domain/task_exemplars.py.
HELD_OUT = [
    ("How can I reverse a linked list in place?", Capability.CODE),
    ("My recursive fibonacci is really slow, speed it up", Capability.CODE),
    ("Make this loop run in parallel across CPU cores", Capability.CODE),
    ("Write a Python function that checks whether a number is prime", Capability.CODE),
    ("Why does this query return duplicate rows when I join the tables?", Capability.CODE),
    ("Could someone break into our admin page with a crafted URL?", Capability.SECURITY),
    ("Is it dangerous to keep API keys in the frontend bundle?", Capability.SECURITY),
    ("Is this endpoint vulnerable to SQL injection?", Capability.SECURITY),
    ("Someone keeps trying to log in as root on my server, what should I do?", Capability.SECURITY),
    ("What is the tallest mountain in Europe?", Capability.GENERAL),
    ("Write a haiku about the sea", Capability.GENERAL),
    ("Suggest a name for my bakery", Capability.GENERAL),
    ("Explain why the sky is blue", Capability.GENERAL),
    ("How long should I boil an egg?", Capability.GENERAL),
]


@pytest.fixture(scope="module")
def routing(embedder) -> RoutingActivities:
    return RoutingActivities(embedder)


def test_similarity_finds_the_capability_without_keywords(routing):
    code = routing.similarity(SimilarityRequest(text="How can I reverse a linked list in place?"))
    sec = routing.similarity(SimilarityRequest(text="Could someone break into our admin page with a crafted URL?"))
    chat = routing.similarity(SimilarityRequest(text="Suggest a name for my bakery"))
    assert code.scores[Capability.CODE] > 0.5 > code.scores[Capability.SECURITY]
    assert sec.scores[Capability.SECURITY] > 0.5 > sec.scores[Capability.CODE]
    assert max(chat.scores.values()) < 0.3


def test_rules_plus_embeddings_beat_rules_alone_on_held_out_prompts(routing):
    rules = sum(classify(text).task_type == want for text, want in HELD_OUT)
    both = sum(classify(text, routing.similarity(SimilarityRequest(text=text)).scores).task_type == want
               for text, want in HELD_OUT)
    assert both > rules
    assert both >= len(HELD_OUT) - 1, f"{both}/{len(HELD_OUT)}"


async def test_workflow_uses_embeddings_when_enabled(client, settings, run_worker, scripted_pool, embedder):
    settings.router_embeddings = True
    pool = scripted_pool(scripted("generalist", ("general",)), scripted("coder", ("code",)))
    async with run_worker(pool, embedder=embedder):
        _, result = await ask_and_wait(client, settings, "How can I reverse a linked list in place?")
    assert result.model == "coder"
    assert any("embedding similarity" in r for r in result.reasons)
    settings.router_embeddings = False
    async with run_worker(pool, embedder=embedder):
        _, rules_only = await ask_and_wait(client, settings, "How can I reverse a linked list in place?")
    assert rules_only.model == "generalist"
