"""The lockdown controller's own lane: its task queue, polled by a small worker of its own.

Measured (bench/security.py): with 300 requests in flight, an engage waited 10.7 s before the controller's
workflow task was even picked up, behind the workload's workflow tasks and local activities on the shared queue.
On its own queue (`<task queue>-lockdown`, see domain.lockdown.control_queue) with its own slots, the controller
acknowledges in a fraction of a second whatever the load. `PlatformWorker` runs both workers as one: `async with`
starts and stops them together, and everything else (e.g. `config()`) is the workload worker's.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from activities.lockdown import LockdownActivities
from domain.lockdown import control_queue


def control_worker(client: Client, task_queue: str, lockdown: LockdownActivities) -> Worker:
    """The controller's worker. The workflows (LockdownWorkflow among them), the sealing converter and the
    interceptors come from the client's HybridPlugin, as for every worker."""
    return Worker(client, task_queue=control_queue(task_queue),
                  activities=[lockdown.persist, lockdown.status, lockdown.verify_release, lockdown.check_release,
                              lockdown.broadcast],
                  activity_executor=ThreadPoolExecutor(4, thread_name_prefix="lockdown"),
                  max_concurrent_activities=2, max_concurrent_local_activities=4)

