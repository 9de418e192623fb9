"""The deployment's pool, as routing must see it: this worker's LLM pool (live) plus what the other workers publish
in PostgreSQL (`pool_state`). Each entry names the worker queue that serves it, so a call goes to the worker whose
pool the router saw (the model loaded there, or cooling down there).

Each worker publishes its rows when a model is loaded, unloaded or cools down, and every `publish_every_s`
(liveness); rows older than `stale_after_s` belong to a gone worker and are ignored. Times are the database's
(`now()`), so workers' clocks do not matter. Readers keep the rows for `read_cache_s` (a fraction of the publishing
interval, so no staler than the rows themselves); this worker's own pool is always read live, and a cooldown this
worker reports clears the cache at once.
"""

from __future__ import annotations

import logging
import threading
import time

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from activities.db.models import PoolStateRow
from activities.llm_pool import LLMPool
from domain.pool import ModelStatus, PoolSnapshot

log = logging.getLogger("hybrid_llm.pool")
T = PoolStateRow.__table__


def pool_queue(task_queue: str, worker_id: str) -> str:
    """The task queue of one worker's pool-bound activities (load, complete, unload, health)."""
    return f"{task_queue}/pool/{worker_id}"


class SharedPool:
    def __init__(self, pool: LLMPool, engine: sa.Engine, scope: str, worker_queue: str,
                 publish_every_s: float = 1.0, stale_after_s: float = 5.0, read_cache_s: float = 0.25) -> None:
        self.pool = pool
        self.engine = engine
        self.scope = scope
        self.worker_queue = worker_queue
        self.publish_every_s = publish_every_s
        self.stale_after_s = stale_after_s
        self.read_cache_s = read_cache_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rows: tuple[float, list] | None = None  # (monotonic time read, rows)
        self._generation = 0  # bumped by a cooldown: a read that raced with it is not cached

    # Publishing (this worker's rows) ----------------------------------------------------------------------------
    def publish(self) -> None:
        rows = [dict(scope=self.scope, worker_queue=self.worker_queue, model_id=m.spec.id, loaded=m.loaded,
                     healthy=m.healthy, health_detail=m.health_detail, in_flight=m.in_flight,
                     memory_bytes=m.memory_bytes, seen_at=sa.func.now())
                for m in self.pool.snapshot().models]
        if not rows:
            return
        stmt = insert(T).values(rows)
        stmt = stmt.on_conflict_do_update(index_elements=[T.c.worker_queue, T.c.model_id], set_={
            c: stmt.excluded[c] for c in ("scope", "loaded", "healthy", "health_detail", "in_flight", "memory_bytes",
                                          "seen_at")})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def cool_down(self, model_id: str, error: str, worker_queue: str | None) -> None:
        """A call failed on `worker_queue`: that worker's entry of the model cools down, for every router."""
        queue = worker_queue or self.worker_queue
        if queue == self.worker_queue:
            self.pool.report_failure(model_id, error)
            self.publish()
        with self.engine.begin() as conn:
            conn.execute(sa.update(T).where(T.c.worker_queue == queue, T.c.model_id == model_id).values(
                cooldown_until=sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, self.pool.cooldown_s),
                failures=T.c.failures + 1, last_error=error[:500]))
        self._generation += 1
        self._rows = None

    def withdraw(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(T).where(T.c.worker_queue == self.worker_queue))

    def start(self) -> None:
        self.publish()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pool-publisher")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.withdraw()
        except sa.exc.SQLAlchemyError as e:  # the rows go stale by themselves
            log.warning("could not withdraw the pool state of %s: %s", self.worker_queue, e)

    def _run(self) -> None:
        while not self._stop.wait(self.publish_every_s):
            try:
                self.publish()
            except sa.exc.SQLAlchemyError as e:
                log.warning("publishing the pool state failed (routing elsewhere sees it stale): %s", e)

    # Reading (the deployment's pool) ----------------------------------------------------------------------------
    def _published(self) -> list:
        cached = self._rows
        if cached is not None and time.monotonic() - cached[0] < self.read_cache_s:
            return cached[1]
        remaining = sa.func.greatest(0, sa.extract("epoch", T.c.cooldown_until - sa.func.now()))
        query = sa.select(T, remaining.label("cooldown_s")).where(
            T.c.scope == self.scope,
            T.c.seen_at > sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, self.stale_after_s))
        read_at, generation = time.monotonic(), self._generation
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        if generation == self._generation:
            self._rows = (read_at, rows)
        return rows

    def snapshot(self) -> PoolSnapshot:
        rows = self._published()
        own_cooldown = {r["model_id"]: float(r["cooldown_s"] or 0) for r in rows
                        if r["worker_queue"] == self.worker_queue}
        models: list[ModelStatus] = []
        for m in self.pool.snapshot().models:  # this worker's pool, live
            extra = own_cooldown.get(m.spec.id, 0.0)
            if extra > m.cooldown_remaining_s:
                m = m.model_copy(update=dict(cooling_down=True, cooldown_remaining_s=round(extra, 1)))
            models.append(m.model_copy(update=dict(task_queue=self.worker_queue)))
        for r in rows:  # the other workers' pools, as they published them
            spec = self.pool.registry.get(r["model_id"])
            if r["worker_queue"] == self.worker_queue or spec is None:
                continue
            cooldown = float(r["cooldown_s"] or 0)
            models.append(ModelStatus(spec=spec, loaded=r["loaded"], healthy=r["healthy"],
                                      health_detail=r["health_detail"], memory_bytes=r["memory_bytes"],
                                      in_flight=r["in_flight"], cooling_down=cooldown > 0,
                                      cooldown_remaining_s=round(cooldown, 1), failures=r["failures"],
                                      last_error=r["last_error"], task_queue=r["worker_queue"]))
        return PoolSnapshot(models=models, here=self.worker_queue)
