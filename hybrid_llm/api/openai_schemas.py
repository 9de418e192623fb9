"""OpenAI's chat completion API, as far as we speak it (request bodies validated strictly where it matters)."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.requests import MAX_MESSAGES, MAX_PROMPT_CHARS, ChatMessage, UserRequest


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] = Field(description="text, or a list of text parts (no images, no tools)")
    name: str | None = Field(default=None, max_length=64)

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    name: str = Field(default="reply", max_length=64)
    schema_: dict = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> "ResponseFormat":
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format.type json_schema needs response_format.json_schema")
        return self


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """`POST /v1/chat/completions`. Parameters OpenAI clients send by habit (top_p, presence_penalty...) are accepted
    and ignored; ones whose meaning we cannot honour (n > 1, tools, functions, logprobs) are refused."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=64, description="a registry model id, or `auto` (the router decides)")
    messages: list[MessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=8192)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    stop: str | list[str] | None = None
    user: str | None = Field(default=None, max_length=256)
    response_format: ResponseFormat | None = None
    n: int | None = Field(default=None, ge=1, le=1, description="one choice only")
    tools: list | None = None
    functions: list | None = None
    logprobs: bool | None = None

    @field_validator("tools", "functions")
    @classmethod
    def _no_tools(cls, v: list | None) -> list | None:
        if v:
            raise ValueError("tools and functions are not supported by this endpoint")
        return None

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, v: bool | None) -> bool | None:
        if v:
            raise ValueError("logprobs are not supported by this endpoint")
        return v

    @model_validator(mode="after")
    def _has_user_turn(self) -> "ChatCompletionRequest":
        if not any(m.role == "user" and m.text().strip() for m in self.messages):
            raise ValueError("messages need at least one non-empty user message")
        return self

    def to_user_request(self, request_id: str, default_max_tokens: int = 256) -> UserRequest:
        messages = [ChatMessage(role="system" if m.role == "developer" else m.role, content=m.text())
                    for m in self.messages]
        # The guardrails and the router read every turn: all of it is the caller's input.
        prompt = "\n\n".join(m.content for m in messages if m.content.strip())
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ValueError(f"messages: the conversation has {len(prompt)} characters; "
                             f"the limit is {MAX_PROMPT_CHARS}")
        fmt = self.response_format
        schema = fmt.json_schema.schema_ if fmt is not None and fmt.json_schema is not None else None
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return UserRequest(
            request_id=request_id, prompt=prompt, messages=messages,
            model=None if self.model == "auto" else self.model,
            max_tokens=self.max_completion_tokens or self.max_tokens or default_max_tokens,
            **({"temperature": self.temperature} if self.temperature is not None else {}),
            stop=stop, json_mode=fmt is not None and fmt.type in ("json_object", "json_schema"),
            json_schema=schema or None, stream=self.stream, end_user=self.user)


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    """OpenAI's error shape, which every error of the OpenAI routes takes."""

    error: OpenAIErrorDetail


OPENAI_ERRORS = {status: {"model": OpenAIError} for status in (400, 401, 403, 404, 409, 413, 429, 503)}


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def sse(data: dict | str, event_id: str | None = None) -> bytes:
    """One server-sent event."""
    body = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}data: {body}\n\n".encode()
