"""The lockdown stops running work: side effects in flight in this worker, and the watcher that stops them.

Every LLM call and sandbox run registers here (`Interrupts.running`) before it asks the gate, and the gate records
the lockdown epoch it admitted it under. While anything runs, a watcher thread LISTENs on PostgreSQL for state
changes (the controller's persist NOTIFYs at commit; a short poll covers a lost notification) and, when the state
is locked, interrupts every run admitted under an earlier epoch: a sandbox is killed (its process tree or cgroup,
QEMU for a microVM), a generation stops between tokens. The activity then fails with `InterruptedByLockdown`
(details: the epoch), which the workflow recognises (workflows/pausable.py).

Providers learn of an interruption through `current_stop()` (the run bound to the calling thread), so their
signatures stay as they are.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.lockdown_store import NOTIFY_CHANNEL, LockdownStore
from domain.lockdown import INTERRUPTED

log = logging.getLogger("hybrid_llm.interrupts")
_bound = threading.local()


class Running:
    """One side effect in flight: what it is, the epoch it was admitted under, and its stop switch."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.admitted_epoch: int | None = None
        self.stop = threading.Event()
        self.interrupted_epoch: int | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    @property
    def interrupted(self) -> bool:
        return self.stop.is_set()

    def on_stop(self, fn: Callable[[], None]) -> None:
        """Call `fn` when this run is interrupted (at once if it already was)."""
        with self._lock:
            if not self.stop.is_set():
                self._callbacks.append(fn)
                return
        fn()

    def interrupt(self, epoch: int) -> None:
        with self._lock:
            if self.stop.is_set():
                return
            self.interrupted_epoch = epoch
            self.stop.set()
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            try:
                fn()
            except Exception:  # noqa: BLE001 - one failing kill must not keep the others running
                log.exception("interrupting %s", self.what)

    def error(self) -> ApplicationError:
        return ApplicationError(f"lockdown (epoch {self.interrupted_epoch}) stopped {self.what} while it ran",
                                self.interrupted_epoch, type=INTERRUPTED, non_retryable=True,
                                category=ApplicationErrorCategory.BENIGN)  # expected: logged at DEBUG

    def raise_if_interrupted(self) -> None:
        if self.stop.is_set():
            raise self.error()


def current_stop() -> threading.Event | None:
    """The stop switch of the run bound to this thread (see `bind`), if any: providers check it between tokens."""
    run = getattr(_bound, "run", None)
    return run.stop if run is not None else None


def on_current_stop(fn: Callable[[], None]) -> None:
    """Call `fn` (from the watcher's thread) when the run bound to this thread is interrupted; nothing if none."""
    run = getattr(_bound, "run", None)
    if run is not None:
        run.on_stop(fn)


@contextmanager
def bind(run: Running | None) -> Iterator[None]:
    """Make `run` this thread's current run (a call thread running a provider)."""
    previous = getattr(_bound, "run", None)
    _bound.run = run
    try:
        yield
    finally:
        _bound.run = previous


class Interrupts:
    """The side effects running in this worker for one deployment, and the lockdown watcher that stops them."""

    def __init__(self, store: LockdownStore, poll_s: float = 1.0, idle_s: float = 5.0) -> None:
        self.store = store
        self.poll_s = poll_s  # a re-read even without a notification (a lost LISTEN connection)
        self.idle_s = idle_s  # the watcher ends after this long with nothing running
        self._runs: set[Running] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._watcher: threading.Thread | None = None

    @contextmanager
    def running(self, what: str) -> Iterator[Running]:
        """Register a side effect for its whole life; register BEFORE the gate admits it (see `sweep`)."""
        run = Running(what)
        with self._lock:
            self._runs.add(run)
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(target=self._watch, name=f"lockdown-watch-{self.store.scope}",
                                                 daemon=True)
                self._watcher.start()
        try:
            yield run
        finally:
            with self._lock:
                self._runs.discard(run)

    def sweep(self, locked: bool, epoch: int) -> int:
        """Interrupt every run the gate admitted under an epoch older than this lockdown's; returns how many.
        A run not yet admitted is left to the gate (which refuses it), and one admitted under this epoch or a
        later one started after a release, so it is not touched."""
        if not locked:
            return 0
        with self._lock:
            victims = [r for r in self._runs if r.admitted_epoch is not None and r.admitted_epoch < epoch
                       and not r.interrupted]
        for r in victims:
            r.interrupt(epoch)
        if victims:
            log.warning("lockdown epoch %s: interrupted %d running side effect(s)", epoch, len(victims))
        return len(victims)

    def _read(self) -> tuple[bool, int]:
        state = self.store.read()
        return state.locked, state.epoch

    def _idle(self) -> bool:
        with self._lock:
            if self._runs:
                return False
            self._watcher = None  # a later `running` starts a fresh watcher
            return True

    def _watch(self) -> None:
        import time

        idle_since: float | None = None
        conn = self._listen()
        failing = False
        try:
            while True:
                try:
                    self.sweep(*self._read())
                    failing = False
                except sa.exc.SQLAlchemyError as e:  # the gate stays shut meanwhile; try again
                    if not failing:
                        log.warning("lockdown watcher cannot read the state: %s", type(e).__name__)
                    failing = True
                if not self._runs:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since >= self.idle_s and self._idle():
                        return
                else:
                    idle_since = None
                conn = self._wait(conn)
        finally:
            if conn is not None:
                conn.close()

    def _listen(self):
        """A dedicated autocommit connection LISTENing for state changes; None if that fails (then: poll)."""
        try:
            import psycopg

            engine = self.store.engine
            args, kwargs = engine.dialect.create_connect_args(engine.url)  # what SQLAlchemy itself would pass
            conn = psycopg.connect(*args, **{**kwargs, "autocommit": True})
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            return conn
        except Exception as e:  # noqa: BLE001 - fall back to polling
            log.warning("lockdown watcher polls (LISTEN failed: %s: %s)", type(e).__name__, e)
            return None

    def _wait(self, conn):
        """Until a notification for our scope, or poll_s."""
        if conn is None:
            self._wake.wait(self.poll_s / 4)
            self._failed_listens = getattr(self, "_failed_listens", 0) + 1
            return self._listen() if self._failed_listens % 20 == 0 else None
        try:
            for note in conn.notifies(timeout=self.poll_s):
                if note.payload == self.store.scope:
                    break
            return conn
        except Exception as e:  # noqa: BLE001 - the connection dropped: poll, then LISTEN again
            log.warning("lockdown watcher lost its LISTEN connection: %s", type(e).__name__)
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass
            return None


class _Admitted:
    def __init__(self, run: Running) -> None:
        self.run = run

    def started(self, stop: Callable[[], None]) -> None:
        """The process runs: `stop()` kills it (its process tree, cgroup, or QEMU) when a lockdown interrupts."""
        self.run.on_stop(stop)


@contextmanager
def admitted_run(gate, action: str, run: Running) -> Iterator[_Admitted]:
    """`gate.admit` for a process started inside the block (activities/sandbox/_capture.run_capped): it learns
    how to stop the process through `.started(stop)`."""
    with gate.admit(action, run=run):
        yield _Admitted(run)
