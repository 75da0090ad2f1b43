"""The saga log and the outbox, in the gateway's own database (tables of migration 0005).

Every state a saga or step moves to is committed before the next action starts, and the changes a step
made go into the outbox in the same transaction as the step's completion: nothing is published that
did not happen, and nothing that happened is left unpublished.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Insert,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Update,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from operations.changes import Change, ChangeKind
from sources.sql import SqliteWriter, write

metadata = MetaData()

SAGAS = Table(
    "sagas", metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("key", String(64), nullable=False, unique=True),
    Column("principal", Text, nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("command", Text, nullable=False),
    Column("state", String(20), nullable=False),
    Column("result", Text),
    Column("error", Text),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_ms", BigInteger),
    Column("owner", String(32)),
    Column("lease_until_ms", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

STEPS = Table(
    "saga_steps", metadata,
    Column("saga_id", String(32), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("name", String(40), nullable=False),
    Column("state", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("result", Text),
    Column("error", Text),
    Column("updated_ms", BigInteger, nullable=False),
)

OUTBOX = Table(
    "outbox", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("saga_id", String(32)),
    Column("kind", String(40), nullable=False),
    Column("source", String(20), nullable=False),
    Column("entity", String(40), nullable=False),
    Column("key", String(100), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("published_ms", BigInteger),
)

def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _load(raw: str | None) -> Any:
    return None if raw is None else orjson.loads(raw)


@dataclass(frozen=True, slots=True)
class StepRow:
    position: int
    name: str
    state: str
    attempts: int
    result: Any
    error: Any


@dataclass(frozen=True, slots=True)
class SagaRow:
    id: str
    kind: str
    key: str
    principal: dict[str, Any]
    request_id: str
    command: dict[str, Any]
    state: str
    result: Any
    error: Any
    attempts: int
    next_attempt_ms: int | None
    owner: str | None
    lease_until_ms: int
    created_ms: int
    updated_ms: int
    steps: tuple[StepRow, ...]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    saga_id: str | None
    change: Change
    created_ms: int


#: One statement of a write: its shape (see `_statement`) and its parameters (a list: executed for each).
Write = tuple[tuple[Any, ...], dict[str, Any] | list[dict[str, Any]]]

_ADD_CHANGE = ("outbox",)
_MARK_SAGA = ("mark",)
_START_NEXT = ("start",)


def _statement(shape: tuple[Any, ...]) -> Insert | Update:
    """The statement of a write's shape, with named parameters (`b_*` in conditions, the columns' own names in
    values), so that the same text serves SQLAlchemy and the SQLite writer's driver alike."""
    kind = shape[0]
    if kind in ("insert_saga", "insert_steps"):
        table = SAGAS if kind == "insert_saga" else STEPS
        return insert(table).values({c.name: bindparam(c.name) for c in table.columns})
    if kind == "outbox":
        return insert(OUTBOX).values({c.name: bindparam(c.name) for c in OUTBOX.columns if c.name != "id"})
    if kind == "mark":
        return (update(OUTBOX).where(OUTBOX.c.saga_id == bindparam("b_saga"), OUTBOX.c.published_ms.is_(None))
                .values(published_ms=bindparam("b_now")))
    if kind == "start":
        return (update(STEPS).where(STEPS.c.saga_id == bindparam("b_saga"), STEPS.c.position == bindparam("b_pos"))
                .values(state="RUNNING", attempts=STEPS.c.attempts + 1, updated_ms=bindparam("b_now")))
    if kind == "step":
        _, fields, attempt = shape
        values: dict[str, Any] = {f: bindparam(f) for f in fields}
        if attempt:
            values["attempts"] = STEPS.c.attempts + 1
        return (update(STEPS).where(STEPS.c.saga_id == bindparam("b_saga"), STEPS.c.position == bindparam("b_pos"))
                .values(values))
    _, fields = shape  # "saga"
    return update(SAGAS).where(SAGAS.c.id == bindparam("b_saga")).values({f: bindparam(f) for f in fields})


class SagaStore:
    """Reads and writes the saga log; each method is one short transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sqlite = SqliteWriter.of(engine)

    async def _write(self, writes: list[Write]) -> None:
        """Statements in one transaction (on a SQLite file in one hop: a step's commit took 2-3 ms through
        SQLAlchemy's async driver, 0.6 ms so)."""
        await write(self.engine, self._sqlite, [(shape, partial(_statement, shape), params)
                                                for shape, params in writes])

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()

    async def create(self, saga: SagaRow) -> bool:
        """Insert a new saga with its steps; False when a saga with its key exists already."""
        try:
            await self._write([
                (("insert_saga",), {
                    "id": saga.id, "kind": saga.kind, "key": saga.key, "principal": _json(saga.principal),
                    "request_id": saga.request_id, "command": _json(saga.command), "state": saga.state,
                    "result": None, "error": None, "attempts": saga.attempts, "next_attempt_ms": saga.next_attempt_ms,
                    "owner": saga.owner, "lease_until_ms": saga.lease_until_ms, "created_ms": saga.created_ms,
                    "updated_ms": saga.updated_ms}),
                (("insert_steps",), [
                    {"saga_id": saga.id, "position": s.position, "name": s.name, "state": s.state,
                     "attempts": s.attempts, "result": None, "error": None, "updated_ms": saga.created_ms}
                    for s in saga.steps])])
        except (IntegrityError, sqlite3.IntegrityError):
            return False
        return True

    async def by_key(self, key: str) -> SagaRow | None:
        async with self.engine.connect() as conn:
            found = (await conn.execute(select(SAGAS).where(SAGAS.c.key == key))).mappings().first()
            return None if found is None else await self._with_steps(conn, dict(found))

    async def get(self, saga_id: str) -> SagaRow | None:
        async with self.engine.connect() as conn:
            found = (await conn.execute(select(SAGAS).where(SAGAS.c.id == saga_id))).mappings().first()
            return None if found is None else await self._with_steps(conn, dict(found))

    async def _with_steps(self, conn: AsyncConnection, row: dict[str, Any]) -> SagaRow:
        steps = (await conn.execute(select(STEPS).where(STEPS.c.saga_id == row["id"]).order_by(STEPS.c.position))
                 ).mappings().all()
        return _saga(row, [dict(s) for s in steps])

    async def claim(self, saga_id: str, owner: str, now_ms: int, lease_ms: int, *, force: bool = False) -> bool:
        """Take the saga over for `owner` if nobody else holds a live lease on it (`force`: if it is ours)."""
        live = and_(SAGAS.c.owner.is_not(None), SAGAS.c.owner != owner, SAGAS.c.lease_until_ms > now_ms)
        condition = SAGAS.c.id == saga_id if force else and_(SAGAS.c.id == saga_id, ~live)
        async with self.engine.begin() as conn:
            done = await conn.execute(update(SAGAS).where(condition).values(
                owner=owner, lease_until_ms=now_ms + lease_ms))
            return bool(done.rowcount)

    async def release(self, saga_id: str, owner: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(SAGAS).where(SAGAS.c.id == saga_id, SAGAS.c.owner == owner)
                               .values(owner=None, lease_until_ms=0))

    async def renew(self, saga_ids: Sequence[str], owner: str, until_ms: int) -> None:
        if not saga_ids:
            return
        async with self.engine.begin() as conn:
            await conn.execute(update(SAGAS).where(SAGAS.c.id.in_(list(saga_ids)), SAGAS.c.owner == owner)
                               .values(lease_until_ms=until_ms))

    async def step(self, saga_id: str, position: int, state: str, now_ms: int, *, attempt: bool = False,
                   result: Any = None, error: Any = None, saga_state: str | None = None,
                   saga_fields: dict[str, Any] | None = None, changes: Sequence[Change] = (),
                   start_next: int | None = None, mark_published: bool = False) -> None:
        """Move one step (and, if given, its saga) to a new state in one transaction, with the step's changes
        added to the outbox.

        In the same transaction, `start_next` marks the following step as running (one commit between two
        steps instead of two), and `mark_published` marks the saga's changes logged so far as published (the
        saga delivered them since its last commit).
        """
        values: dict[str, Any] = {"state": state, "updated_ms": now_ms}
        if result is not None:
            values["result"] = _json(result)
        if error is not None:
            values["error"] = _json(error)
        elif state in ("DONE", "COMPENSATED"):
            values["error"] = None  # a step that got there has no failure to show
        where = {"b_saga": saga_id, "b_pos": position}
        writes: list[Write] = [(("step", tuple(values), attempt), {**values, **where})]
        if start_next is not None:
            writes.append((_START_NEXT, {"b_saga": saga_id, "b_pos": start_next, "b_now": now_ms}))
        if saga_state is not None or saga_fields:
            fields = _saga_values(now_ms, saga_state, saga_fields or {})
            writes.append((("saga", tuple(fields)), {**fields, "b_saga": saga_id}))
        if mark_published:
            writes.append((_MARK_SAGA, {"b_saga": saga_id, "b_now": now_ms}))
        if changes:
            writes.append((_ADD_CHANGE, [
                {"saga_id": saga_id, "kind": c.kind.value, "source": c.source, "entity": c.entity, "key": c.key,
                 "payload": orjson.dumps(c.data).decode(), "created_ms": now_ms, "published_ms": None}
                for c in changes]))
        await self._write(writes)

    async def saga(self, saga_id: str, now_ms: int, state: str | None = None, **fields: Any) -> None:
        values = _saga_values(now_ms, state, fields)
        await self._write([(("saga", tuple(values)), {**values, "b_saga": saga_id})])

    async def due(self, states: Sequence[str], now_ms: int, limit: int = 100) -> list[str]:
        """Unfinished sagas someone should drive now: retries that are due, and runs whose owner's lease ran out."""
        free = or_(SAGAS.c.owner.is_(None), SAGAS.c.lease_until_ms <= now_ms)
        due = or_(SAGAS.c.next_attempt_ms.is_(None), SAGAS.c.next_attempt_ms <= now_ms)
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(SAGAS.c.id).where(SAGAS.c.state.in_(list(states)), free, due)
                                      .order_by(SAGAS.c.created_ms).limit(limit))
            return [str(r[0]) for r in rows]

    async def listing(self, states: Sequence[str] | None, limit: int, after: tuple[int, str] | None = None
                      ) -> list[SagaRow]:
        """Sagas newest first, optionally only in `states`, after the (created_ms, id) of the last one seen."""
        stmt = select(SAGAS).order_by(SAGAS.c.created_ms.desc(), SAGAS.c.id.desc()).limit(limit)
        if states:
            stmt = stmt.where(SAGAS.c.state.in_(list(states)))
        if after is not None:
            stmt = stmt.where(or_(SAGAS.c.created_ms < after[0],
                                  and_(SAGAS.c.created_ms == after[0], SAGAS.c.id < after[1])))
        async with self.engine.connect() as conn:
            rows = [dict(r) for r in (await conn.execute(stmt)).mappings().all()]
            return [await self._with_steps(conn, r) for r in rows]

    async def counts(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(SAGAS.c.state, func.count()).group_by(SAGAS.c.state))
            return {str(state): int(n) for state, n in rows}

    # --- outbox -------------------------------------------------------------------------------------

    async def unpublished(self, saga_id: str | None = None, limit: int = 500) -> list[OutboxRow]:
        stmt = select(OUTBOX).where(OUTBOX.c.published_ms.is_(None)).order_by(OUTBOX.c.id).limit(limit)
        if saga_id is not None:
            stmt = stmt.where(OUTBOX.c.saga_id == saga_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [OutboxRow(int(r["id"]), r["saga_id"], Change(ChangeKind(r["kind"]), r["source"], r["entity"],
                                                             r["key"], orjson.loads(r["payload"])),
                          int(r["created_ms"])) for r in rows]

    async def purge_published(self, before_ms: int) -> int:
        """Forget outbox rows published before `before_ms` (their consumers have them); returns how many."""
        async with self.engine.begin() as conn:
            done = await conn.execute(OUTBOX.delete().where(OUTBOX.c.published_ms.is_not(None),
                                                            OUTBOX.c.published_ms < before_ms))
            return int(done.rowcount or 0)

    async def mark_published(self, ids: Sequence[int], now_ms: int) -> None:
        if not ids:
            return
        async with self.engine.begin() as conn:
            await _mark_published(conn, ids, now_ms)

    async def mark_saga_published(self, saga_id: str, now_ms: int) -> None:
        await self._write([(_MARK_SAGA, {"b_saga": saga_id, "b_now": now_ms})])


async def _mark_published(conn: AsyncConnection, ids: Sequence[int], now_ms: int) -> None:
    await conn.execute(update(OUTBOX).where(OUTBOX.c.id.in_(list(ids)), OUTBOX.c.published_ms.is_(None))
                       .values(published_ms=now_ms))


def _saga_values(now_ms: int, state: str | None, fields: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {"updated_ms": now_ms}
    if state is not None:
        values["state"] = state
    for name, value in fields.items():
        values[name] = _json(value) if name in ("result", "error") else value
    return values


def _saga(row: dict[str, Any], steps: list[dict[str, Any]]) -> SagaRow:
    return SagaRow(
        id=row["id"], kind=row["kind"], key=row["key"], principal=orjson.loads(row["principal"]),
        request_id=row["request_id"], command=orjson.loads(row["command"]), state=row["state"],
        result=_load(row["result"]), error=_load(row["error"]), attempts=int(row["attempts"]),
        next_attempt_ms=None if row["next_attempt_ms"] is None else int(row["next_attempt_ms"]),
        owner=row["owner"], lease_until_ms=int(row["lease_until_ms"]), created_ms=int(row["created_ms"]),
        updated_ms=int(row["updated_ms"]),
        steps=tuple(StepRow(int(s["position"]), s["name"], s["state"], int(s["attempts"]), _load(s["result"]),
                            _load(s["error"])) for s in steps))
