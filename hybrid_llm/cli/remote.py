"""The CLI through the HTTP API (HYBRID_API_URL + HYBRID_API_KEY): the same commands, the same output, with the
API deciding who may do what. Each function returns what the local path of its command returns."""

from __future__ import annotations

import base64
import time
from typing import Any

from hybrid_llm.cli.common import CLIError, api_call, err_console


def ask(cfg, request, show_progress: bool) -> dict:
    """POST /v1/requests, then follow GET /v1/requests/{id} until it closes; the result as `ask --json` has it."""
    body = request.model_dump(mode="json", exclude_none=True)
    submitted: Any = api_call(cfg, "POST", "/v1/requests", json_body=body)
    status = err_console.status("waiting for a worker…") if show_progress else None
    if status is not None:
        status.start()
    try:
        last = None
        while True:
            state: Any = api_call(cfg, "GET", submitted["status_url"])
            if state["status"] != "running":
                break
            progress = state.get("progress")
            if status is not None and progress and progress != last:
                stage, model = progress["stage"], progress.get("model")
                status.update({"loading": f"loading model {model}", "generating": f"generating with {model}"}
                              .get(stage, stage) + "…")
                last = progress
            time.sleep(0.2)
    finally:
        if status is not None:
            status.stop()
    if state["status"] != "completed":
        error = state.get("error") or {"type": state["status"], "message": "the request did not complete"}
        raise CLIError(f"{error['type']}: {error['message']} (workflow {submitted['workflow_id']})")
    return {"workflow_id": submitted["workflow_id"], **state["result"]}


def request_status(cfg, request_id: str) -> dict:
    return api_call(cfg, "GET", f"/v1/requests/{request_id}")  # type: ignore[return-value]


def pending_approvals(cfg) -> list:
    from domain.approvals import PendingApproval

    items: Any = api_call(cfg, "GET", "/v1/approvals")
    return [PendingApproval.model_validate(x) for x in items]


def decide_approval(cfg, workflow_id: str, approve: bool, note: str) -> str:
    out: Any = api_call(cfg, "POST", f"/v1/approvals/{workflow_id}", json_body={"approve": approve, "note": note})
    return out["result"]


def lockdown_state(cfg):
    from domain.lockdown import LockdownState

    return LockdownState.model_validate(api_call(cfg, "GET", "/v1/lockdown"))


def lockdown_engage(cfg, reason: str):
    from domain.lockdown import LockdownState

    return LockdownState.model_validate(api_call(cfg, "POST", "/v1/lockdown/engage", json_body={"reason": reason}))


def lockdown_release(cfg, secret: str):
    from domain.lockdown import LockdownState

    return LockdownState.model_validate(api_call(cfg, "POST", "/v1/lockdown/release", json_body={"secret": secret}))


def sandbox_list(cfg, all_: bool) -> list[dict]:
    return api_call(cfg, "GET", "/v1/sandboxes", params={"all": str(all_).lower()})  # type: ignore[return-value]


def sandbox_show(cfg, workflow_id: str) -> dict:
    return api_call(cfg, "GET", f"/v1/sandboxes/{workflow_id}")  # type: ignore[return-value]


def sandbox_decide(cfg, workflow_id: str, approve: bool, note: str) -> str:
    out: Any = api_call(cfg, "POST", f"/v1/sandboxes/{workflow_id}/decision",
                        json_body={"approve": approve, "note": note})
    return out["result"]


def upload(cfg, name: str, data: bytes, wait: bool) -> dict:
    """POST /v1/uploads (base64 JSON); the receipt plus `workflow_id` and `result` as `upload --json` prints."""
    return api_call(cfg, "POST", "/v1/uploads", timeout_s=600, json_body={  # type: ignore[return-value]
        "name": name, "content_base64": base64.b64encode(data).decode(), "wait": wait})


def search(cfg, query: str, k: int):
    from domain.rag import SearchResults

    return SearchResults.model_validate(api_call(cfg, "GET", "/v1/search", params={"q": query, "k": k}))


def sandbox_exec(cfg, spec, approve: bool, quiet: bool):
    """POST /v1/sandboxes; with `approve` the API waits for the outcome, otherwise follow the run until a
    reviewer decides. The SandboxOutcome, as `sandbox exec` prints it."""
    from domain.sandbox import SandboxOutcome

    body = {"command": list(spec.command), "code": spec.code, "language": spec.language.value, "files": spec.files,
            "backend": spec.backend.value if spec.backend else None, "limits": spec.limits.model_dump(mode="json"),
            "network_hosts": list(spec.network_hosts), "approve": approve, "wait": approve}
    started: Any = api_call(cfg, "POST", "/v1/sandboxes", json_body=body, timeout_s=3600)
    if approve:
        return SandboxOutcome.model_validate(started)
    workflow_id = started["workflow_id"]
    if not quiet:
        from hybrid_llm.cli.common import console

        console.print(f"{workflow_id}: waiting for review: hybrid-llm sandbox approve|reject {workflow_id}",
                      highlight=False)
    while True:
        shown = sandbox_show(cfg, workflow_id)
        if shown["status"] != "running":
            break
        time.sleep(0.5)
    if "outcome" not in shown:
        raise CLIError(f"{workflow_id}: {shown['status']}")
    return SandboxOutcome.model_validate(shown["outcome"])
