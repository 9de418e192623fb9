"""Custom search attributes: what the Temporal UI and list queries can filter requests by."""

from temporalio.common import SearchAttributeKey

TASK_TYPE = SearchAttributeKey.for_keyword("TaskType")
MODEL = SearchAttributeKey.for_keyword("Model")

ALL = (TASK_TYPE, MODEL)
