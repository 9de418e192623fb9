"""The HTTP API's request and response bodies (a public contract: add optional fields only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from domain.requests import REQUEST_ID_PATTERN, RequestResult, UserRequest

RequestStatusName = Literal["running", "completed", "failed", "canceled", "terminated", "timed_out"]


class SubmitRequest(UserRequest):
    """`POST /v1/requests`: a `UserRequest` whose id is optional (the API makes one up when it is missing).

    Inherits every limit and validator of `UserRequest`, and its `extra="forbid"`.
    """

    request_id: str | None = Field(  # type: ignore[assignment]
        default=None, pattern=REQUEST_ID_PATTERN,
        description="Idempotency key: a retried POST with the same id returns the same workflow.")

    def to_user_request(self, request_id: str) -> UserRequest:
        return UserRequest(**self.model_dump(exclude={"request_id"}), request_id=request_id)


class Submitted(BaseModel):
    request_id: str
    workflow_id: str
    status_url: str


class ErrorInfo(BaseModel):
    type: str
    message: str


class ProgressInfo(BaseModel):
    stage: str
    model: str | None = None


class RequestStatus(BaseModel):
    request_id: str
    workflow_id: str
    status: RequestStatusName
    result: RequestResult | None = None
    error: ErrorInfo | None = None
    progress: ProgressInfo | None = None


class Health(BaseModel):
    temporal: Literal["ok", "unreachable"]
    message: str | None = None


class Problem(BaseModel):
    """Every error response: one readable line, plus the field errors for 422."""

    message: str
    detail: list[dict] | None = None
