"""The embedded stack behind `hybrid-llm up | down | status`: Temporal dev server, PostgreSQL + pgvector, worker.

Each part is a detached daemon with its pid file, log and data under `Settings.state_dir`; it outlives the CLI.
"""

from hybrid_llm.stack.control import down, status, up
from hybrid_llm.stack.errors import StackError
from hybrid_llm.stack.status import PartState, PartStatus, StackStatus

__all__ = ["PartState", "PartStatus", "StackError", "StackStatus", "down", "status", "up"]
