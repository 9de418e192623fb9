"""Workflows: deterministic orchestration. One workflow per file."""
