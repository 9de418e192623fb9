"""Global and per-model context in PostgreSQL: read and written by activities (`context.get`, `context.put`)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from temporalio import activity

from activities.db.models import GlobalContextRow, ModelContextRow
from activities.lockdown_gate import LockdownGate
from domain.rag import ContextEntries, ContextEntry, ContextGet, ContextPut


class ContextActivities:
    def __init__(self, engine: sa.Engine, gate: LockdownGate) -> None:
        self.engine = engine
        self.gate = gate

    @activity.defn(name="context.get")
    def get(self, query: ContextGet) -> ContextEntries:
        """One entry (`key`) or all of a scope's entries, by key."""
        with Session(self.engine) as s:
            if query.scope == "global":
                stmt = sa.select(GlobalContextRow).order_by(GlobalContextRow.key)
                if query.key is not None:
                    stmt = stmt.where(GlobalContextRow.key == query.key)
            else:
                stmt = sa.select(ModelContextRow).where(ModelContextRow.model_id == query.model_id) \
                    .order_by(ModelContextRow.key)
                if query.key is not None:
                    stmt = stmt.where(ModelContextRow.key == query.key)
            return ContextEntries(entries=[_entry(query.scope, r) for r in s.scalars(stmt)])

    @activity.defn(name="context.put")
    def put(self, entry: ContextPut) -> ContextEntry:
        """Create or replace one entry (admitted by the lockdown gate: read-only while locked)."""
        table = GlobalContextRow if entry.scope == "global" else ModelContextRow
        values = dict(key=entry.key, value=entry.value, updated_by=entry.updated_by, updated_at=sa.func.now())
        keys = ["key"]
        if entry.scope == "model":
            values["model_id"], keys = entry.model_id, ["model_id", "key"]
        stmt = pg_insert(table).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={
            "value": stmt.excluded.value, "updated_by": stmt.excluded.updated_by, "updated_at": sa.func.now()})
        with self.gate.admit(f"writing context {entry.key}"), Session(self.engine) as s, s.begin():
            s.execute(stmt)
            where = [table.key == entry.key] + ([ModelContextRow.model_id == entry.model_id]
                                                if entry.scope == "model" else [])
            return _entry(entry.scope, s.scalars(sa.select(table).where(*where)).one())

    def all(self) -> list:
        return [self.get, self.put]


def _entry(scope: str, row) -> ContextEntry:
    return ContextEntry(scope=scope, model_id=getattr(row, "model_id", None), key=row.key, value=row.value,
                        updated_at=row.updated_at, updated_by=row.updated_by)
