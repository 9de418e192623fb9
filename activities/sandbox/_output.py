"""Sandbox output bounded inside the activity: each stream beyond `limit` bytes (UTF-8) is trimmed before the
result leaves the activity (so before it can enter workflow history); the whole stream goes to the blob store
by sha256 (`stdout_sha256` / `stderr_sha256`), when there is one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from domain.sandbox import ExecResult


T = TypeVar("T")


def while_ticking(fn: Callable[[], T], tick: Callable[[], None], every_s: float = 0.5) -> T:
    """Run `fn` in a helper thread while this (the activity's) thread calls `tick` (heartbeats): storing 64 MiB
    in the blob store must not look like a lost worker."""
    done = threading.Event()
    box: dict = {}

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=work, daemon=True, name="sandbox-output").start()
    while not done.wait(every_s):
        tick()
    if "error" in box:
        raise box["error"]
    return box["value"]


def trim_utf8(text: str, limit: int) -> tuple[str, int]:
    """(at most `limit` bytes of `text`, cut on a character boundary; how many bytes were left out)."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text, 0
    kept = data[:limit].decode("utf-8", "ignore")
    return kept, len(data) - len(kept.encode("utf-8"))


def bound_output(result: ExecResult, limit: int, put: Callable[[bytes], str] | None) -> ExecResult:
    update: dict = {}
    for key in ("stdout", "stderr"):
        text = getattr(result, key)
        kept, left_out = trim_utf8(text, limit)
        if not left_out:
            continue
        sha = put(text.encode("utf-8")) if put is not None else None
        where = f"blob {sha}" if sha else "not kept (no blob store)"
        update[key] = kept + f"\n[... {left_out} more bytes of {key}: {where}]"
        update[f"{key}_sha256"] = sha
        update["truncated"] = True
    return result.model_copy(update=update) if update else result
