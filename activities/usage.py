"""Who owns which workflow, what each principal spent, and how fast each key calls: the API's limits.

- `workflow_owners`: the API writes (workflow id, request id, principal) before it starts a workflow. Reads are
  scoped by it, and usage is attributed through it.
- `api_usage`: the LLM activity records every call's tokens (and, for cloud models, the cost from litellm's
  local price map) under the call's request id. Fallbacks and delegations carry the same request id, so a
  principal's daily spend rolls them all up.
- `api_rate`: one counter per key and minute, shared by every API process (requests per minute).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import psycopg
import sqlalchemy as sa
from pydantic import BaseModel

from activities.db import pipelined
from activities.db.models import Base

log = logging.getLogger("hybrid_llm.usage")
TS = sa.DateTime(timezone=True)

workflow_owners = sa.Table(
    "workflow_owners", Base.metadata,
    sa.Column("workflow_id", sa.String(256), primary_key=True),
    sa.Column("request_id", sa.String(128), index=True),
    sa.Column("principal_id", sa.String(200), nullable=False, index=True),
    sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
)
api_usage = sa.Table(
    "api_usage", Base.metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("at", TS, nullable=False, server_default=sa.func.now()),
    sa.Column("principal_id", sa.String(200)),
    sa.Column("request_id", sa.String(128)),
    sa.Column("workflow_id", sa.String(256)),
    sa.Column("model_id", sa.String(64), nullable=False),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
    sa.Index("ix_api_usage_principal_at", "principal_id", "at"),
)
api_rate = sa.Table(
    "api_rate", Base.metadata,
    sa.Column("key_id", sa.String(200), primary_key=True),
    sa.Column("window_start", TS, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)


_ASYNC_COMMIT_SQL = "SET LOCAL synchronous_commit = off"
_ASYNC_COMMIT = sa.text(_ASYNC_COMMIT_SQL)
# The call's spend, attributed to the owner of its request (none: NULL, as for calls no API principal started).
_RECORD_USAGE = (
    "INSERT INTO api_usage (principal_id, request_id, workflow_id, model_id, prompt_tokens, completion_tokens, "
    "cost_usd) VALUES ((SELECT principal_id FROM workflow_owners WHERE request_id = %(request_id)s LIMIT 1), "
    "%(request_id)s, %(workflow_id)s, %(model_id)s, %(prompt_tokens)s, %(completion_tokens)s, %(cost_usd)s)")


def day_start(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class UsageLine(BaseModel):
    principal_id: str | None
    model_id: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float


class Usage(BaseModel):
    since: datetime
    lines: list[UsageLine]
    total_tokens: int
    cost_usd: float


def cloud_cost(model: str | None, prompt_tokens: int, completion_tokens: int) -> float:
    """USD for a cloud call from litellm's bundled price map (LITELLM_LOCAL_MODEL_COST_MAP=True: no download);
    0 for models it does not price."""
    if not model:
        return 0.0
    try:
        import litellm

        p, c = litellm.cost_per_token(model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        return float(p + c)
    except Exception:  # noqa: BLE001 - an unpriced model costs nothing we can know
        return 0.0


class Owners:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def claim(self, workflow_id: str, principal_id: str, request_id: str | None = None) -> tuple[str, bool]:
        """Record `principal_id` as the owner unless the workflow already has one: (the owner's id, whether this
        call made the claim).

        Committed without waiting for the WAL flush (~2 ms less on every start): the row is visible to every reader
        at once; only a crash of PostgreSQL itself within about half a second could lose it, and a lost claim gives
        nobody the workflow: a later claim of the same id is fresh, and a fresh claim's start refuses an id that an
        existing workflow uses (409: the API's `only_new` start and the describe check of POST /v1/requests). The
        owner would lose read access to that request."""
        from sqlalchemy.dialects.postgresql import insert

        with self.engine.begin() as conn:
            conn.execute(_ASYNC_COMMIT)
            mine = conn.execute(insert(workflow_owners).values(
                workflow_id=workflow_id, request_id=request_id, principal_id=principal_id)
                .on_conflict_do_nothing().returning(workflow_owners.c.principal_id)).scalar_one_or_none()
            if mine is not None:
                return mine, True
            return conn.execute(sa.select(workflow_owners.c.principal_id)
                                .where(workflow_owners.c.workflow_id == workflow_id)).scalar_one(), False

    def release(self, workflow_id: str, principal_id: str) -> None:
        """Undo a claim that turned out to name a workflow someone else started."""
        with self.engine.begin() as conn:
            conn.execute(workflow_owners.delete().where(workflow_owners.c.workflow_id == workflow_id,
                                                        workflow_owners.c.principal_id == principal_id))

    def owner(self, workflow_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(workflow_owners.c.principal_id)
                                .where(workflow_owners.c.workflow_id == workflow_id)).scalar_one_or_none()

    def owned_by(self, principal_id: str, workflow_ids: list[str]) -> set[str]:
        if not workflow_ids:
            return set()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(workflow_owners.c.workflow_id).where(
                workflow_owners.c.principal_id == principal_id, workflow_owners.c.workflow_id.in_(workflow_ids)))
            return {r[0] for r in rows}


class UsageLedger:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def record(self, *, model_id: str, prompt_tokens: int, completion_tokens: int, request_id: str | None,
               workflow_id: str | None = None, cost_usd: float = 0.0) -> None:
        """One LLM call, attributed to the owner of its request (None for calls no API principal started).

        Committed without waiting for the WAL flush (synchronous_commit off for this transaction: measured 0.6 ms
        instead of 2-4 ms, on every model call's path). The row is visible to the budgets at once; only a crash of
        PostgreSQL itself within about half a second could lose it (the call's tokens stay in the request's
        history either way)."""
        params = {"request_id": request_id, "workflow_id": workflow_id, "model_id": model_id,
                  "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "cost_usd": cost_usd}
        # On every model call's path: a pooled connection driven through psycopg, the transaction (begin, the
        # setting, the insert, commit) in one pipelined round trip.
        with self.engine.connect() as conn:
            raw = conn.connection.driver_connection
            try:
                with pipelined(raw):
                    raw.execute(_ASYNC_COMMIT_SQL)
                    raw.execute(_RECORD_USAGE, params, prepare=True)
                    raw.commit()
            except psycopg.Error:
                conn.invalidate()  # never hand a connection in an unknown state back to the pool
                raise

    def spent_today(self, principal_id: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(api_usage.c.prompt_tokens + api_usage.c.completion_tokens), 0))
                .where(api_usage.c.principal_id == principal_id, api_usage.c.at >= day_start())).scalar_one())

    def summary(self, principal_id: str | None, since: datetime) -> Usage:
        """Tokens and cost per principal and model since `since`; one principal's, or everyone's (None)."""
        total = api_usage.c.prompt_tokens + api_usage.c.completion_tokens
        query = (sa.select(api_usage.c.principal_id, api_usage.c.model_id, sa.func.count().label("calls"),
                           sa.func.sum(api_usage.c.prompt_tokens).label("prompt_tokens"),
                           sa.func.sum(api_usage.c.completion_tokens).label("completion_tokens"),
                           sa.func.sum(total).label("total_tokens"), sa.func.sum(api_usage.c.cost_usd).label("cost"))
                 .where(api_usage.c.at >= since)
                 .group_by(api_usage.c.principal_id, api_usage.c.model_id)
                 .order_by(api_usage.c.principal_id, api_usage.c.model_id))
        if principal_id is not None:
            query = query.where(api_usage.c.principal_id == principal_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        lines = [UsageLine(principal_id=r.principal_id, model_id=r.model_id, calls=r.calls,
                           prompt_tokens=int(r.prompt_tokens), completion_tokens=int(r.completion_tokens),
                           total_tokens=int(r.total_tokens), cost_usd=float(r.cost)) for r in rows]
        return Usage(since=since, lines=lines, total_tokens=sum(x.total_tokens for x in lines),
                     cost_usd=sum(x.cost_usd for x in lines))


class RateWindow:
    """Fixed one-minute windows per key, counted in PostgreSQL (atomic upsert)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def hit(self, key_id: str, rpm: int) -> float | None:
        """Count one call; None when within `rpm`, else the seconds until the next window opens."""
        from sqlalchemy.dialects.postgresql import insert

        now = datetime.now(UTC)
        window = now.replace(second=0, microsecond=0)
        stmt = insert(api_rate).values(key_id=key_id, window_start=window, n=1)
        stmt = stmt.on_conflict_do_update(index_elements=["key_id", "window_start"],
                                          set_={"n": api_rate.c.n + 1}).returning(api_rate.c.n)
        with self.engine.begin() as conn:
            # A counter lost in a database crash costs at most one minute of rate: no need to wait for the disk.
            conn.execute(sa.text("SET LOCAL synchronous_commit = off"))
            n = conn.execute(stmt).scalar_one()
            if n == 1:  # first call of a window: drop old windows of this key
                conn.execute(api_rate.delete().where(api_rate.c.key_id == key_id,
                                                     api_rate.c.window_start < window))
        if n <= rpm:
            return None
        return max((window + timedelta(minutes=1) - now).total_seconds(), 0.001)
