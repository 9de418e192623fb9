"""AnswerStream: a request workflow's durable, offset-addressed answer stream (temporalio's Workflow Streams).

The LLM activity publishes the answer's text in batches (signals) while the model generates; readers
(hybrid_llm/answer_client.py) take the batches from the run's history as Temporal stores them, and the stream's
state (and the end of the answer, which the workflow publishes once the answer passed the output guardrails) by
query. Registering the stream's handlers adds no commands to history, and readers neither signal nor update, so
only the activity's batches (signals) add events.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.contrib.workflow_streams import WorkflowStream

with workflow.unsafe.imports_passed_through():
    from domain.llm import Completion
    from domain.requests import UserRequest
    from domain.streaming import END_TOPIC, AnswerEnd, seed_for


class AnswerStream:
    """Mixed into the request workflow, whose `@workflow.init` opens the stream for a streamed request only
    (`WorkflowStream` must be constructed in that method): readers of other runs take the result."""

    def __init__(self) -> None:
        super().__init__()
        self.answer_stream: WorkflowStream | None = None
        self._answer_calls = 0

    def chat_options(self, request: UserRequest) -> dict:
        """The OpenAI endpoint's options for one LLM activity (none for plain requests: their input is unchanged).
        `resume`: an earlier call (a model that failed) may have published part of the answer: continue it."""
        if not (request.stream or request.stop or request.json_mode):
            return {}
        self._answer_calls += 1
        return {"stop": request.stop, "json_mode": request.json_mode, "stream": request.stream,
                "seed": seed_for(request.request_id), "resume": self._answer_calls > 1}

    def answer_done(self, model: str, completion: Completion) -> None:
        """Tell readers the answer is complete (and cleared by the guardrails); an in-memory append, not a command."""
        if self.answer_stream is None:  # not a streamed request (it opened no stream): nobody reads one
            return
        self.answer_stream.topic(END_TOPIC, type=AnswerEnd).publish(AnswerEnd(
            model=model, finish_reason=completion.finish_reason, prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens, chars=len(completion.text)))
