"""A workflow's timeline, read from its event history (the audit trail). Pure over the history, except `show`,
which fetches histories (the workflow's and its children's) and, with `full`, resolves blobs."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import datetime
from typing import Any

from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory

from domain.blobs import messages_bytes, preview, sha256_of
from domain.requests import ChatMessage
from hybrid_llm.codec import Keyring
from hybrid_llm.temporal import PayloadReader, keyring_of

_reader: ContextVar[PayloadReader] = ContextVar("timeline_reader", default=PayloadReader(None))
MAX_CHILD_DEPTH = 5


def _one(payloads: Payloads | None) -> Any:
    if payloads is None or not payloads.payloads:
        return None
    return _decode(payloads.payloads[0])


def _decode(payload: Payload) -> Any:
    try:
        return _reader.get().value(payload)
    except Exception:  # noqa: BLE001 - an undecodable payload is shown, not fatal
        return {"undecodable_payload": payload.metadata.get("encoding", b"").decode(errors="replace")}


def _time(event) -> datetime:
    return event.event_time.ToDatetime()


def _message(failure) -> str:
    """A failure's message; sealed failures keep it in their encoded attributes."""
    if failure.HasField("encoded_attributes"):
        attrs = _decode(failure.encoded_attributes)
        if isinstance(attrs, dict) and "message" in attrs:
            return attrs["message"]
    return failure.message


def _failure_message(failure) -> dict:
    out = {"message": _message(failure)}
    info = failure.application_failure_info
    if info.type:
        out["type"] = info.type
    cause = failure.cause
    while cause is not None and _message(cause):
        out["cause"] = _message(cause)
        if cause.application_failure_info.type:
            out["cause_type"] = cause.application_failure_info.type
        if not cause.HasField("cause"):
            break
        cause = cause.cause
    return out


def _who(principal: Any) -> dict | None:
    """Who asked or decided, as the entry point stamped it: key id, name, roles."""
    if not isinstance(principal, dict) or "id" not in principal:
        return None
    return {"id": principal["id"], "name": principal.get("name"), "roles": principal.get("roles", []),
            "kind": principal.get("kind")}


def _prompt_hash(inp: dict) -> str | None:
    if inp.get("messages_ref"):
        return inp["messages_ref"]
    msgs = inp.get("messages") or []
    try:
        return sha256_of(messages_bytes([ChatMessage(**m) for m in msgs])) if msgs else None
    except Exception:  # noqa: BLE001
        return None


def build(history: WorkflowHistory, keyring: Keyring | None = None) -> dict:
    """The timeline of one run: a summary and a list of entries `{t_ms, kind, ...}` in history order. Sealed
    payloads are opened with `keyring` (the deployment's codec keyring)."""
    token = _reader.set(PayloadReader(keyring))
    try:
        return _build(history)
    finally:
        _reader.reset(token)


def _build(history: WorkflowHistory) -> dict:
    events = list(history.events)
    if not events:
        return {"workflow_id": history.workflow_id, "entries": []}
    t0 = _time(events[0])
    started = events[0].workflow_execution_started_event_attributes
    out: dict[str, Any] = {"workflow_id": history.workflow_id, "workflow_type": started.workflow_type.name,
                           "run_id": started.original_execution_run_id or None, "started_at": t0.isoformat(),
                           "events": len(events), "status": "running", "entries": [], "children": [],
                           "model_calls": [], "memo": {}}
    entries: list[dict] = out["entries"]
    scheduled: dict[int, tuple[str, Any, datetime]] = {}
    attempts: dict[int, int] = {}
    child_init: dict[int, tuple[str, str]] = {}

    def add(event, kind: str, **data) -> dict:
        entry = {"t_ms": round((_time(event) - t0).total_seconds() * 1000, 1), "event_id": event.event_id,
                 "kind": kind, **data}
        entries.append(entry)
        return entry

    inp = _one(started.input)
    asked_by = _who(inp.get("principal") or inp.get("requester")) if isinstance(inp, dict) else None
    out["asked_by"] = asked_by
    add(events[0], "started", workflow_type=started.workflow_type.name, input=_summarize_input(inp),
        parent=started.parent_workflow_execution.workflow_id or None, asked_by=asked_by)
    for event in events[1:]:
        et = event.event_type
        if et == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            a = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = (a.activity_type.name, _one(a.input), _time(event))
        elif et == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            a = event.activity_task_started_event_attributes
            attempts[a.scheduled_event_id] = a.attempt
        elif et == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            a = event.activity_task_completed_event_attributes
            name, arg, at = scheduled.get(a.scheduled_event_id, ("?", None, _time(event)))
            took = round((_time(event) - at).total_seconds() * 1000, 1)
            _activity_done(add, out, event, name, arg, _one(a.result), took, attempts.get(a.scheduled_event_id, 1))
        elif et in (EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED, EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT):
            a = (event.activity_task_failed_event_attributes if et == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
                 else event.activity_task_timed_out_event_attributes)
            name, arg, at = scheduled.get(a.scheduled_event_id, ("?", None, _time(event)))
            entry = add(event, "activity_failed", activity=name, attempts=attempts.get(a.scheduled_event_id, 1),
                        duration_ms=round((_time(event) - at).total_seconds() * 1000, 1), **_failure_message(a.failure))
            if name == "llm.complete" and isinstance(arg, dict):
                entry["kind"] = "model_call_failed"
                entry["model"] = arg.get("model_id")
                entry["prompt_sha256"] = _prompt_hash(arg)
        elif et == EventType.EVENT_TYPE_MARKER_RECORDED:
            _marker(add, out, event)
        elif et == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
            fields = event.workflow_properties_modified_event_attributes.upserted_memo.fields
            for key, payload in fields.items():
                value = _decode(payload)
                out["memo"][key] = value
                _memo_entry(add, event, key, value)
        elif et == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            attrs = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            values = {k: _decode(v) for k, v in attrs.items()}
            if "Locked" in values:
                add(event, "lockdown_pause" if values["Locked"] else "lockdown_resume", search_attributes=values)
            if "AwaitingApproval" in values and values["AwaitingApproval"]:
                add(event, "awaiting_person")
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            a = event.workflow_execution_signaled_event_attributes
            add(event, "lockdown_signal" if a.signal_name == "lockdown" else "signal", signal=a.signal_name,
                input=_one(a.input), identity=a.identity or None)
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            a = event.workflow_execution_update_accepted_event_attributes
            arg = _one(a.accepted_request.input.args)
            add(event, "update", update=a.accepted_request.input.name, input=arg,
                by=_who(arg.get("principal")) if isinstance(arg, dict) else None)
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            a = event.workflow_execution_update_completed_event_attributes
            if a.outcome.HasField("failure"):
                add(event, "update_rejected", **_failure_message(a.outcome.failure))
            else:
                add(event, "update_done", result=_one(a.outcome.success))
        elif et == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            a = event.start_child_workflow_execution_initiated_event_attributes
            child_init[event.event_id] = (a.workflow_id, a.workflow_type.name)
        elif et == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            a = event.child_workflow_execution_started_event_attributes
            ref = {"workflow_id": a.workflow_execution.workflow_id, "run_id": a.workflow_execution.run_id,
                   "workflow_type": a.workflow_type.name}
            out["children"].append(ref)
            add(event, "child_started", **ref)
        elif et == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
            a = event.child_workflow_execution_completed_event_attributes
            add(event, "child_completed", workflow_id=a.workflow_execution.workflow_id,
                workflow_type=a.workflow_type.name, result=_summarize_result(_one(a.result)))
        elif et == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
            a = event.child_workflow_execution_failed_event_attributes
            add(event, "child_failed", workflow_id=a.workflow_execution.workflow_id,
                workflow_type=a.workflow_type.name, **_failure_message(a.failure))
        elif et == EventType.EVENT_TYPE_TIMER_FIRED:
            add(event, "timer_fired")
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            result = _one(event.workflow_execution_completed_event_attributes.result)
            out["status"] = "completed"
            out["result"] = _summarize_result(result)
            add(event, "completed", result=out["result"])
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            out["status"] = "failed"
            out["failure"] = _failure_message(event.workflow_execution_failed_event_attributes.failure)
            add(event, "failed", **out["failure"])
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            out["status"] = "continued_as_new"
            add(event, "continued_as_new")
        elif et in (EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
                    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT):
            out["status"] = EventType.Name(et).removeprefix("EVENT_TYPE_WORKFLOW_EXECUTION_").lower()
            add(event, out["status"])
    out["duration_ms"] = round((_time(events[-1]) - t0).total_seconds() * 1000, 1)
    return out


def _activity_done(add, out: dict, event, name: str, arg: Any, result: Any, took: float, attempt: int) -> None:
    arg = arg if isinstance(arg, dict) else {}
    result = result if isinstance(result, dict) else {"value": result}
    if name == "llm.complete":
        call = {"model": result.get("model_id") or arg.get("model_id"),
                "prompt_sha256": result.get("prompt_sha256") or _prompt_hash(arg),
                "messages_ref": arg.get("messages_ref"),
                "output_sha256": result.get("text_sha256") or sha256_of(str(result.get("text", "")).encode()),
                "text_ref": result.get("text_ref"),
                "prompt_tokens": result.get("prompt_tokens"), "completion_tokens": result.get("completion_tokens"),
                "load_ms": result.get("load_ms"), "inference_ms": result.get("inference_ms"), "duration_ms": took,
                "attempt": attempt, "output_preview": preview(str(result.get("text", "")), 120),
                "verdict": _verdict(result.get("verdict"))}
        out["model_calls"].append({**call, "event_id": event.event_id, "_input": arg, "_text": result.get("text")})
        add(event, "model_call", **call)
    elif name == "llm.load":
        add(event, "model_load", model=result.get("model_id"), load_ms=result.get("load_ms"), duration_ms=took)
    elif name == "permissions.check":
        add(event, "permission_check", request=_brief_permission(arg), decision=result.get("decision"),
            reason=result.get("reason"), rule=result.get("rule"), duration_ms=took)
    elif name == "permissions.write":
        add(event, "file_written", path=arg.get("path"), bytes=result.get("value"), duration_ms=took)
    elif name == "permissions.record_failure":
        add(event, "permission_failure_counted", counts=result, duration_ms=took)
    elif name == "lockdown.alert":
        add(event, "lockdown_alert", reason=arg.get("reason"), trigger=arg.get("trigger"), state=result)
    else:
        add(event, "activity", activity=name, duration_ms=took, attempt=attempt)


def _marker(add, out: dict, event) -> None:
    a = event.marker_recorded_event_attributes
    details = {k: _one(v) for k, v in a.details.items()}
    if a.marker_name == "core_patch":
        add(event, "patch", patch_id=details.get("patch_id"))
        return
    if a.marker_name != "core_local_activity":
        add(event, "marker", marker=a.marker_name)
        return
    data = details.get("data") or {}
    name = data.get("activity_type", "?")
    if a.HasField("failure"):
        add(event, "local_activity_failed", activity=name, **_failure_message(a.failure))
        return
    result = details.get("result")
    if name == "llm.complete" and isinstance(result, dict):  # a model call run inside the workflow task
        _activity_done(add, out, event, name, result.get("request") or {}, result, _marker_ms(data),
                       int(data.get("attempt") or 1))
    elif name == "request.preflight" and isinstance(result, dict):
        pool = [m.get("spec", {}).get("id") for m in (result.get("pool") or {}).get("models", [])]
        add(event, "input_scan", verdict=_verdict(result.get("verdict")), pool=pool)
    elif name == "guard.scan":
        add(event, "guardrails_scan", verdict=_verdict(result))
    elif name == "llm.report_failure":
        add(event, "model_cooled_down")
    elif name == "blobs.put_messages" and isinstance(result, dict):
        add(event, "prompt_stored", sha256=result.get("sha256"), size=result.get("size"))
    elif name == "blobs.put_texts" and isinstance(result, dict):
        add(event, "texts_stored", refs=[{"sha256": r.get("sha256"), "size": r.get("size")}
                                         for r in result.get("refs", [])])
    elif name == "routing.similarity":
        add(event, "routing_similarity", scores=(result or {}).get("scores") if isinstance(result, dict) else None)
    elif name.startswith("lockdown."):
        add(event, "lockdown_" + name.split(".", 1)[1], result=result)
    else:
        add(event, "local_activity", activity=name)


def _marker_ms(data: dict) -> float | None:
    """A local activity's time from its (first) schedule to its completion, as its marker records them."""
    try:
        start, end = data["original_schedule_time"], data["complete_time"]
        return round(((end["seconds"] - start["seconds"]) + (end["nanos"] - start["nanos"]) / 1e9) * 1000, 1)
    except (KeyError, TypeError):
        return None


def _memo_entry(add, event, key: str, value: Any) -> None:
    if key == "routing" and isinstance(value, list) and value:
        last = value[-1]
        add(event, "routing", chosen=last.get("chosen"), task_type=last.get("task_type"),
            reasons=last.get("reasons"), skipped=last.get("skipped"), round=len(value))
    elif key == "guardrails":
        add(event, "guardrails", verdicts=value)
    elif key == "judge" and isinstance(value, list) and value:
        add(event, "guard_judge", **value[-1])  # the latest opinion (what, model, risk, outcome)
    elif key == "decision":
        add(event, "permission_decision", **(value if isinstance(value, dict) else {"value": value}))
    elif key == "decided_by":
        pass  # shown with the decision's summary
    else:
        add(event, "memo", key=key, value=value)


def _verdict(v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    return {k: v.get(k) for k in ("verdict", "risk", "rules") if k in v} or v


def _brief_permission(req: dict) -> dict:
    return {k: req.get(k) for k in ("actor", "operation", "model_id", "path", "host", "explanation") if req.get(k)}


def _summarize_input(inp: Any) -> Any:
    if not isinstance(inp, dict):
        return inp
    if "request" in inp and isinstance(inp["request"], dict) and "prompt" in inp["request"]:
        r = inp["request"]
        prompt = str(r.get("prompt", ""))
        return {"request_id": r.get("request_id"), "prompt_preview": preview(prompt, 120),
                "prompt_sha256": sha256_of(prompt.encode()), "prompt_bytes": len(prompt.encode()),
                **{k: r[k] for k in ("model", "max_tokens", "save_as") if r.get(k) is not None}}
    if "request" in inp and isinstance(inp["request"], dict):
        return {"request": _brief_permission(inp["request"]),
                "content_bytes": len(str(inp.get("content") or "").encode()) if inp.get("content") else None}
    return inp


def _summarize_result(result: Any) -> Any:
    if isinstance(result, dict) and "answer" in result:
        answer = str(result["answer"])
        return {"model": result.get("model"), "task_type": result.get("task_type"), "usage": result.get("usage"),
                "timings": result.get("timings"), "attempts": result.get("attempts"),
                "answer_sha256": sha256_of(answer.encode()), "answer_preview": preview(answer, 120)}
    return result


async def show(client: Client, workflow_id: str, *, run_id: str | None = None, full: bool = False,
               blobs=None, depth: int = 0) -> dict:
    """Fetch and build the timeline, children included (delegations, permissions, sandboxes...). With `full`,
    every model call gets `messages` (exactly what the model saw) and `output`, resolved from the blob store
    when history holds only their hash."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    timeline = build(history, keyring_of(client))
    calls = timeline.pop("model_calls")
    if full:
        for call, entry in zip(calls, [e for e in timeline["entries"] if e["kind"] == "model_call"]):
            entry.update(_resolve(call, blobs))
    if depth < MAX_CHILD_DEPTH:
        timeline["children"] = [await show(client, c["workflow_id"], run_id=c["run_id"], full=full, blobs=blobs,
                                           depth=depth + 1) for c in timeline["children"]]
    return timeline


def _resolve(call: dict, blobs) -> dict:
    inp, out = call["_input"], {}
    if inp.get("messages"):
        out["messages"] = inp["messages"]
    elif inp.get("messages_ref"):
        out["messages"] = _from_blob(blobs, inp["messages_ref"], messages=True)
    text_ref = call.get("text_ref")
    text = call.get("_text")
    if text_ref and (text is None or sha256_of(str(text).encode()) != text_ref):
        out["output"] = _from_blob(blobs, text_ref)
    else:
        out["output"] = text
    return out


def _from_blob(blobs, sha: str, messages: bool = False) -> Any:
    if blobs is None:
        return {"blob": sha, "error": "no blob store configured"}
    from activities.blobs import BlobNotFound

    try:
        return [m.model_dump() for m in blobs.get_messages(sha)] if messages else blobs.get_text(sha)
    except BlobNotFound:
        return {"blob": sha, "error": "not in the blob store"}
