"""AnswerStream: a request workflow's durable, offset-addressed answer stream (temporalio's Workflow Streams).

The LLM activity publishes the answer's text in batches (signals) while the model generates; the API subscribes
(by query) from any offset. The workflow itself publishes the end of
the answer once it passed the output guardrails. Registering the stream's handlers adds no commands to history, and
our readers poll by query (hybrid_llm/answer_client.py), so only the activity's batches (signals) add events.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.contrib.workflow_streams import WorkflowStream

with workflow.unsafe.imports_passed_through():
    from domain.llm import Completion
    from domain.streaming import END_TOPIC, AnswerEnd


class AnswerStream:
    def __init__(self) -> None:
        super().__init__()
        self.answer_stream = WorkflowStream()

    def answer_done(self, model: str, completion: Completion) -> None:
        """Tell readers the answer is complete (and cleared by the guardrails); an in-memory append, not a command."""
        self.answer_stream.topic(END_TOPIC, type=AnswerEnd).publish(AnswerEnd(
            model=model, finish_reason=completion.finish_reason, prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens, chars=len(completion.text)))
