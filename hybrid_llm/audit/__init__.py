"""Audit: a request's timeline read from its Temporal history, and proof by replay against the current code.

- `timeline.build(history)`: routing decisions, model calls (prompt/output hashes, tokens), guardrail verdicts,
  permission decisions, child workflows, lockdown signals, timings: pure, over one WorkflowHistory.
- `replay.verify(histories)`: replays with the worker's exact workflows and data converter.
- `replay.export(...)` / `replay.load_files(...)`: histories as JSON files (WorkflowHistory.to_json format).
"""

from hybrid_llm.audit.replay import export, fetch_histories, load_files, verify
from hybrid_llm.audit.timeline import build, show

__all__ = ["build", "export", "fetch_histories", "load_files", "show", "verify"]
