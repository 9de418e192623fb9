"""Labelled example requests per capability: the reference points for embedding-similarity routing."""

from domain.registry import Capability

EXEMPLARS: dict[Capability, tuple[str, ...]] = {
    Capability.CODE: (
        "Write a function that reverses a linked list",
        "How do I sort a dictionary by value?",
        "Fix the bug in this loop, it never terminates",
        "Refactor this class to use dependency injection",
        "What does this stack trace mean?",
        "Implement binary search over a sorted array",
        "Write a SQL query that counts orders per customer",
        "Convert this script to use async I/O",
        "Why does my program crash with a null pointer?",
        "Add unit tests for the parser module",
        "Write a regular expression that matches email addresses",
        "How do I merge two branches in git?",
        "Optimise this nested loop, it is too slow",
        "Build a REST endpoint that returns the user's orders",
        "Parse a CSV file and compute the average of a column",
    ),
    Capability.SECURITY: (
        "Is this code vulnerable to SQL injection?",
        "Review this login flow for security problems",
        "How could an attacker exploit this endpoint?",
        "Check this configuration for exposed secrets",
        "Explain how cross-site scripting works and how to prevent it",
        "Threat model our file upload feature",
        "Is storing passwords with MD5 safe?",
        "Audit these firewall rules",
        "What permissions should this service account have?",
        "How do I protect an API against brute-force attacks?",
        "Analyse this suspicious email for phishing",
        "Harden this Linux server",
        "Is this JWT validation correct and safe?",
        "Find privilege escalation risks in this setup",
        "Scan these dependencies for known vulnerabilities",
    ),
    Capability.GENERAL: (
        "What is the capital of France?",
        "Write a short poem about autumn",
        "Summarise this article in three sentences",
        "Translate this paragraph into Spanish",
        "Give me ideas for a birthday party",
        "Explain photosynthesis to a child",
        "What should I cook for dinner tonight?",
        "Draft a polite email declining a meeting",
        "Who wrote Pride and Prejudice?",
        "Plan a three-day trip to Rome",
        "What are the health benefits of walking?",
        "Tell me a joke about cats",
        "How does inflation affect savings?",
        "Recommend a few science fiction novels",
        "Explain the rules of chess",
    ),
}


def similarity_scores(best_similarity: dict[Capability, float]) -> dict[Capability, float]:
    """Map raw cosine similarities (best match per capability) to 0..1 evidence for classify().

    Evidence for a specialist is its similarity above the general one, so a prompt that is close to
    everything does not count as a specialist task.
    """
    general = best_similarity.get(Capability.GENERAL, 0.0)
    scores: dict[Capability, float] = {}
    for cap in (Capability.CODE, Capability.SECURITY):
        margin = best_similarity.get(cap, 0.0) - general
        scores[cap] = round(min(1.0, max(0.0, margin / 0.25)), 3)
    return scores
