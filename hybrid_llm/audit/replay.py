"""Verify histories by replaying them against the current workflow code, and move histories in and out as JSON.

Replay uses exactly the worker's WORKFLOWS and sealing data converter: a history that replays proves the current code
makes the same decisions that were recorded; one that does not names the workflow and (when Temporal says) the
event where they diverge.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from hybrid_llm.codec import Keyring
from hybrid_llm.temporal import WORKFLOWS, data_converter

_EVENT_ID = re.compile(r"event(?:[ _]?id)?[\s:=#]+(\d+)", re.IGNORECASE)
FILE_SEPARATOR = "__"


def workflow_types() -> list[str]:
    return [w.__temporal_workflow_definition.name for w in WORKFLOWS]  # type: ignore[attr-defined]


def visibility_query(extra: str | None = None) -> str:
    types = ", ".join(f"'{t}'" for t in workflow_types())
    query = f"WorkflowType IN ({types})"
    return f"{query} AND ({extra})" if extra else query


async def list_runs(client: Client, query: str | None = None, limit: int | None = None) -> list[tuple[str, str]]:
    """(workflow_id, run_id) of every run of our workflow types that visibility knows (newest first)."""
    runs: list[tuple[str, str]] = []
    async for wf in client.list_workflows(visibility_query(query), limit=limit):
        runs.append((wf.id, wf.run_id))
    return runs


async def fetch_histories(client: Client, runs: Iterable[tuple[str, str | None]],
                          concurrency: int = 16) -> list[WorkflowHistory]:
    sem = asyncio.Semaphore(concurrency)

    async def one(wid: str, rid: str | None) -> WorkflowHistory:
        async with sem:
            return await client.get_workflow_handle(wid, run_id=rid).fetch_history()

    return list(await asyncio.gather(*(one(w, r) for w, r in runs)))


def _run_id(history: WorkflowHistory) -> str:
    if not history.events:
        return ""
    return history.events[0].workflow_execution_started_event_attributes.original_execution_run_id


def _type(history: WorkflowHistory) -> str:
    if not history.events:
        return ""
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


async def verify(histories: list[WorkflowHistory], workflows: list | None = None,
                 keyring: Keyring | None = None) -> dict:
    """Replay every history; `{"replayed", "failed", "failures": [{workflow_id, run_id, workflow_type, error,
    event_id?}], "seconds"}`. `workflows` defaults to the worker's (tests pass changed ones); `keyring` opens
    sealed histories (the deployment's codec keyring; a history sealed under another key fails to replay)."""
    converter = data_converter(keyring) if keyring is not None else pydantic_data_converter
    replayer = Replayer(workflows=workflows or WORKFLOWS, data_converter=converter)
    t0 = time.perf_counter()

    async def each() -> AsyncIterator[WorkflowHistory]:
        for h in histories:
            yield h

    results = await replayer.replay_workflows(each(), raise_on_replay_failure=False)
    by_run = {_run_id(h): h for h in histories}
    seconds = time.perf_counter() - t0
    failures = []
    for run_id, error in results.replay_failures.items():
        history = by_run.get(run_id)
        failure = {"workflow_id": history.workflow_id if history else None, "run_id": run_id,
                   "workflow_type": _type(history) if history else None,
                   "error": f"{type(error).__name__}: {error}"}
        match = _EVENT_ID.search(str(error))
        event_id = int(match.group(1)) if match else (await _locate(replayer, history) if history else None)
        if event_id is not None:
            failure["event_id"] = event_id
        failures.append(failure)
    return {"replayed": len(histories), "failed": len(failures), "failures": failures, "seconds": round(seconds, 3)}


_WFT = (EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)


async def _locate(replayer: Replayer, history: WorkflowHistory) -> int | None:
    """The first event where the code and the history part ways (Temporal's message does not always say):
    bisect over prefixes ending at a WorkflowTaskStarted; the culprit is the first non-task event recorded after
    the last workflow task that still replays."""
    events = list(history.events)
    cuts = [i for i, e in enumerate(events) if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED]

    async def fails(k: int) -> bool:
        prefix = WorkflowHistory(history.workflow_id, events[:cuts[k] + 1])
        result = await replayer.replay_workflow(prefix, raise_on_replay_failure=False)
        return result.replay_failure is not None

    lo, hi = 0, len(cuts)  # the first failing prefix index in [lo, hi); hi = the whole history
    while lo < hi:
        mid = (lo + hi) // 2
        if await fails(mid):
            hi = mid
        else:
            lo = mid + 1
    start = cuts[lo - 1] + 1 if lo > 0 else 1
    for e in events[start:]:
        if e.event_type not in _WFT:
            return e.event_id
    return events[-1].event_id if events else None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._:=-]", "_", name)


def export(histories: Iterable[WorkflowHistory], out_dir: Path) -> list[Path]:
    """Write `<workflow_id>__<run_id>.json` files (the format of WorkflowHistory.to_json and
    `temporal workflow show -o json`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for h in histories:
        path = out_dir / f"{_safe(h.workflow_id)}{FILE_SEPARATOR}{_run_id(h)}.json"
        path.write_text(h.to_json(), encoding="utf-8")
        written.append(path)
    return written


def load_file(path: Path) -> WorkflowHistory:
    """A history JSON file; the workflow id comes from the name (`<id>__<run>.json`, or `<id>.json`)."""
    stem = path.stem
    workflow_id = stem.rsplit(FILE_SEPARATOR, 1)[0] if FILE_SEPARATOR in stem else stem
    return WorkflowHistory.from_json(workflow_id, path.read_text(encoding="utf-8"))


def load_files(paths: Iterable[Path]) -> list[WorkflowHistory]:
    found: list[Path] = []
    for p in paths:
        found.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    return [load_file(p) for p in found]
