"""The platform worker (`python -m worker`) as a detached daemon, checked by its pollers on the task queue."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from hybrid_llm.stack import procs
from hybrid_llm.stack.errors import StackError

if TYPE_CHECKING:
    from temporalio.client import Client

    from hybrid_llm.settings import Settings


# Offline by design: nothing may be downloaded at run time.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that rebuilds these exact settings in a child process (unset fields are removed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_")}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, Path):
            value = value.expanduser().resolve()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, tuple, set, dict, BaseModel)):  # complex fields travel as JSON
            value = json.dumps(value, default=_jsonable)
        env[f"HYBRID_{name.upper()}"] = str(value)
    return env | OFFLINE_ENV


def _jsonable(value: object) -> object:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else str(value)


class WorkerProcess:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid_file = settings.state_dir / "worker.pid"
        self.log_file = settings.state_dir / "logs" / "worker.log"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "worker"]

    def pid(self) -> int | None:
        pid = procs.read_pid(self.pid_file)
        return pid if procs.alive(pid, procs.cmdline_has("-m worker")) else None

    def start(self, timeout_s: float = 45.0) -> int:
        """Start the worker (or find ours running) and wait until it polls the task queue; returns its pid."""
        pid = self.pid()
        if pid is None:
            # cwd = state dir: a `worker.py` in the caller's directory must not shadow ours; every setting
            # travels in the environment, so no config file is needed there.
            pid = procs.spawn_detached(self.command(), self.log_file, env=settings_env(self.settings),
                                       cwd=self.settings.state_dir)
            procs.write_pid(self.pid_file, pid)
        procs.run_async(lambda: self._wait_polling(pid, timeout_s))
        return pid

    def stop(self, timeout_s: float = 15.0) -> bool:
        """SIGTERM (the worker drains and exits), SIGKILL after `timeout_s`; False when it was not running."""
        pid = self.pid()
        if pid is not None:
            procs.stop_pid(pid, timeout_s)
        self.pid_file.unlink(missing_ok=True)
        return pid is not None

    async def _wait_polling(self, pid: int, timeout_s: float) -> None:
        from hybrid_llm.temporal import TemporalUnavailable, connect

        deadline = time.monotonic() + timeout_s
        try:
            client = await connect(self.settings)
        except TemporalUnavailable as e:
            raise StackError(f"cannot check the worker: {e}") from None
        while time.monotonic() < deadline:
            if not procs.alive(pid):
                raise StackError(f"the worker (pid {pid}) exited during start-up; {procs.log_tail(self.log_file)}")
            if any(identity.startswith(f"{pid}@") for identity in await pollers(client, self.settings)):
                return
            await asyncio.sleep(0.2)
        raise StackError(f"the worker (pid {pid}) did not poll task queue {self.settings.task_queue!r} within "
                         f"{timeout_s:.0f} s; {procs.log_tail(self.log_file)}")


async def pollers(client: Client, settings: Settings) -> list[str]:
    """Identities (`pid@host`) of the workers polling workflow tasks on the settings' task queue."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    resp = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=settings.temporal_namespace, task_queue=TaskQueue(name=settings.task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
    return [p.identity for p in resp.pollers]
