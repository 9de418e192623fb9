"""Activities that only our own workflows may run: they run as local activities (in the worker that holds the
workflow task, so in our workflow code), and refuse to run when scheduled as a normal activity, which anyone who
can reach the task queue could do."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

F = TypeVar("F", bound=Callable)


def local_only(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        info = activity.info()
        if not info.is_local:
            raise ApplicationError(f"{info.activity_type} runs only as a local activity of the platform's own "
                                   "workflows", type="Forbidden", non_retryable=True)
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
