"""Custom search attributes: what the Temporal UI and list queries can filter workflows by."""

from temporalio.common import SearchAttributeKey

TASK_TYPE = SearchAttributeKey.for_keyword("TaskType")
MODEL = SearchAttributeKey.for_keyword("Model")
# Lockdown: on the controller (the platform's state) and on each paused workflow.
LOCKED = SearchAttributeKey.for_bool("Locked")
LOCK_REASON = SearchAttributeKey.for_text("LockReason")
# Permission requests waiting for a person (`hybrid-llm approvals list`).
AWAITING_APPROVAL = SearchAttributeKey.for_bool("AwaitingApproval")

ALL = (TASK_TYPE, MODEL, LOCKED, LOCK_REASON, AWAITING_APPROVAL)


def cli_type(key: SearchAttributeKey) -> str:
    """The type name the Temporal CLI uses (`--search-attribute Name=Type`)."""
    return key.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_").title()
