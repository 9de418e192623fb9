"""Run a process with a wall-clock timeout and capped output: stop it when either runs out."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field


@dataclass
class Captured:
    returncode: int | None
    stdout: bytes
    stderr: bytes
    stdout_bytes: int
    stderr_bytes: int
    timed_out: bool = False
    output_limit: bool = False
    duration_ms: float = 0.0
    notes: list[str] = field(default_factory=list)


def run_capped(argv: list[str], *, wall_s: float, output_bytes: int, kill: Callable[[subprocess.Popen], None],
               tick: Callable[[], None] | None = None, env: dict[str, str] | None = None,
               tick_every_s: float = 0.5,
               admit: Callable[[], AbstractContextManager] | None = None, pass_fds: tuple[int, ...] = ()) -> Captured:
    """Start `argv`; keep at most `output_bytes` of stdout + stderr; `kill(proc)` when the wall clock or the
    output cap runs out. `tick` runs about every `tick_every_s` (activity heartbeats). The process starts inside `admit()` (the lockdown
    gate), which is left as soon as it has started."""
    with (admit or nullcontext)() as admitted:
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env, close_fds=True, pass_fds=pass_fds)
        if callable(getattr(admitted, "started", None)):
            admitted.started(lambda: kill(proc))  # a lockdown may stop it (activities/interrupts.py)
    kept = {1: bytearray(), 2: bytearray()}
    seen = {1: 0, 2: 0}
    over = threading.Event()
    lock = threading.Lock()

    def drain(stream, key: int) -> None:
        while chunk := stream.read1(65536):
            with lock:
                seen[key] += len(chunk)
                room = output_bytes - len(kept[1]) - len(kept[2])
                if room > 0:
                    kept[key] += chunk[:room]
                flood = seen[1] + seen[2] > output_bytes and not over.is_set()
                if flood:
                    over.set()
            if flood:
                kill(proc)  # at once, from the reader: the flood stops here
        stream.close()

    readers = [threading.Thread(target=drain, args=(proc.stdout, 1), daemon=True),
               threading.Thread(target=drain, args=(proc.stderr, 2), daemon=True)]
    for r in readers:
        r.start()
    # Popen.wait(timeout) polls with sleeps (up to 50 ms late); a waiter thread wakes us at once instead.
    exited = threading.Event()
    waiter = threading.Thread(target=lambda: (proc.wait(), exited.set()), daemon=True)
    waiter.start()
    deadline = started + wall_s
    timed_out = False
    while not exited.wait(timeout=max(0.0, min(tick_every_s, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            timed_out = True
            kill(proc)
            break
        if tick is not None:
            tick()
    proc.wait()
    for r in readers:
        r.join(timeout=5)
    duration_ms = (time.monotonic() - started) * 1000
    output_limit = over.is_set() and not timed_out
    return Captured(returncode=None if (timed_out or output_limit) else proc.returncode, stdout=bytes(kept[1]),
                    stderr=bytes(kept[2]), stdout_bytes=seen[1], stderr_bytes=seen[2], timed_out=timed_out,
                    output_limit=output_limit, duration_ms=duration_ms)
