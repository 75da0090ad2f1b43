"""The SQL audit sink: group commit, one hash chain per writer, fail closed or spool to a file.

Records of the requests in flight are written together in one transaction: a record that arrives
while the sink is idle is committed at once (with whatever arrived in the same turn of the event
loop), and records that arrive during a commit are committed together as soon as it ends, so batches
grow with the load and a lone request never waits for company. `window_ms` (0 by default) adds a wait
before each commit for larger batches still. Each request waits for its record's commit before its
answer is sent, so an answered request always has its record, even if the process is killed the next
instant. Every process is its own writer with its own chain (`writer`, `seq`, `prev_hash`, `hash`),
so concurrent writers never fork a chain.

The writer task is supervised: if it dies of an error nobody expected, the error is logged, the records
it held fail (their requests answer 503, never wait), and it is restarted, after a pause that grows
while it keeps dying. No request waits longer than `write_timeout_s` for its record: a record not yet
taken for a commit by then is withdrawn, so a record is either committed or its request gets an error.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog
from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text, insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auth.audit import GENESIS, AuditRecord, chain_hash
from sources.sql import SqliteWriter
from sources.tasks import compact_traceback

log = structlog.get_logger("gateway.audit")

metadata = MetaData()
audit_events = Table(
    "audit_events", metadata,
    Column("writer", String(32), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("id", String(32), nullable=False),
    Column("time", String(32), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("partner_id", String(16)),
    Column("operation_name", String(200)),
    Column("outcome", String(16), nullable=False),
    Column("record", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)


class AuditUnavailable(Exception):
    """The record could not be made durable; the request must not be answered as if it had been."""


class _SqliteWriter:
    """Group commits to a SQLite file: INSERT and COMMIT in one hop to the writer's own thread (SqliteWriter)."""

    def __init__(self, writer: SqliteWriter) -> None:
        self.writer = writer
        self.sql, _ = writer.sql(("audit", "insert"), lambda: insert(audit_events))

    async def write(self, rows: list[dict[str, Any]]) -> None:
        await self.writer.run(lambda conn: conn.executemany(self.sql, rows))

    async def aclose(self) -> None:
        await asyncio.to_thread(self.writer.close)


@dataclass(frozen=True, slots=True)
class _Row:
    writer: str
    seq: int
    record: AuditRecord
    canonical: str
    prev_hash: str
    hash: str

    def values(self) -> dict[str, object]:
        r = self.record
        return {"writer": self.writer, "seq": self.seq, "id": r.id, "time": r.time, "request_id": r.request_id,
                "subject": r.subject, "partner_id": r.partner_id, "operation_name": r.operation_name,
                "outcome": r.outcome, "record": self.canonical, "prev_hash": self.prev_hash, "hash": self.hash}


_Entry = tuple[AuditRecord, asyncio.Future[None]]


class SqlAuditSink:
    #: Pause before restarting a writer that died: doubled for each death in a row, up to the maximum.
    RESTART_FIRST_S = 0.01
    RESTART_MAX_S = 1.0

    def __init__(self, engine: AsyncEngine, *, window_ms: float = 0.0, max_batch: int = 500,
                 spool: Path | None = None, write_timeout_s: float = 15.0) -> None:
        self.engine = engine
        self.window_s = window_ms / 1000
        self.max_batch = max_batch
        self.spool = spool
        self.write_timeout_s = write_timeout_s
        self.writer = uuid.uuid4().hex
        self._seq = 0
        self._prev = GENESIS
        self._pending: list[_Entry] = []
        self._held: list[_Entry] = []  # the batch the writer task is committing
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._restart: asyncio.TimerHandle | None = None
        self._deaths = 0  # writer deaths since its last commit that ended normally
        self._closing = False
        self._conn: AsyncConnection | None = None
        writer = SqliteWriter.of(engine)
        self._direct = None if writer is None else _SqliteWriter(writer)

    async def start(self) -> None:
        await self.replay_spool()
        self._spawn()

    def _spawn(self) -> None:
        self._restart = None
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")
        self._task.add_done_callback(self._supervise)
        if self._pending:
            self._wake.set()  # records that arrived while no writer was running

    def _supervise(self, task: asyncio.Task[None]) -> None:
        """The writer task ended: fail the records it held, and, unless the sink is closing, restart it."""
        error = None if task.cancelled() else task.exception()
        held, self._held = self._held, []
        self._fail(held, "the audit writer stopped before committing the record")
        if self._closing:
            if error is not None:
                log.error("audit_writer_failed_while_closing", error=repr(error), records=len(held),
                          traceback=compact_traceback(error))
            return
        self._deaths += 1
        delay = min(self.RESTART_MAX_S, self.RESTART_FIRST_S * 2 ** (self._deaths - 1))
        log.error("audit_writer_died", error=repr(error), records=len(held), deaths_in_a_row=self._deaths,
                  restart_in_s=delay, traceback=compact_traceback(error) if error is not None else None)
        self._restart = asyncio.get_running_loop().call_later(delay, self._spawn)

    @staticmethod
    def _fail(entries: list[_Entry], reason: str) -> None:
        for _, future in entries:
            if not future.done():
                future.set_exception(AuditUnavailable(reason))

    async def write(self, record: AuditRecord) -> None:
        """Return once the record is committed (or spooled); AuditUnavailable if it cannot be, or is not
        within `write_timeout_s`."""
        if self._closing:
            raise AuditUnavailable("the audit log is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved, even if nobody waits
        entry = (record, future)
        self._pending.append(entry)
        self._wake.set()
        try:
            async with asyncio.timeout(self.write_timeout_s):
                await asyncio.shield(future)
        except TimeoutError:
            if entry in self._pending:  # not taken for a commit yet: withdrawn, never committed
                self._pending.remove(entry)
                future.cancel()
            # else it is in a commit under way, which may still make it durable: a record too many is
            # the safe side of an answer refused.
            log.error("audit_write_timed_out", timeout_s=self.write_timeout_s, deaths_in_a_row=self._deaths)
            raise AuditUnavailable(f"the record was not committed within {self.write_timeout_s}s") from None

    async def _run(self) -> None:
        while not self._closing or self._pending:
            await self._wake.wait()
            self._wake.clear()
            # Let the other records of this turn of the loop (or of the window) join this commit.
            await asyncio.sleep(self.window_s)
            while self._pending:
                self._held = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                await self._commit(self._held)
                self._held = []
                self._deaths = 0

    def _chain(self, records: list[AuditRecord]) -> list[_Row]:
        rows, seq, prev = [], self._seq, self._prev
        for record in records:
            seq += 1
            canonical = record.canonical()
            digest = chain_hash(prev, canonical)
            rows.append(_Row(self.writer, seq, record, canonical.decode(), prev, digest))
            prev = digest
        return rows

    async def _commit(self, batch: list[tuple[AuditRecord, asyncio.Future[None]]]) -> None:
        rows = self._chain([r for r, _ in batch])
        error: Exception | None = None
        try:
            if self._spooled():
                await self.replay_spool()
            if self._spooled():
                raise AuditUnavailable("the database is still unreachable")  # keep spooling until replayed
            if self._direct is not None:
                await self._direct.write([row.values() for row in rows])
            else:
                conn = await self._connection()
                try:
                    async with conn.begin():
                        await conn.execute(insert(audit_events), [row.values() for row in rows])
                except (SQLAlchemyError, OSError):
                    await self._drop_connection()
                    raise
        except (SQLAlchemyError, OSError, sqlite3.Error, AuditUnavailable) as exc:
            error = exc
        if error is not None and self.spool is not None:
            try:
                self._append_spool(rows)
                error = None
            except OSError as exc:
                error = exc
        if error is not None:
            log.error("audit_write_failed", error=str(error), records=len(rows))
            for _, future in batch:
                if not future.done():
                    future.set_exception(AuditUnavailable(str(error)))
            return  # the chain state stays at the last durable record
        self._seq, self._prev = rows[-1].seq, rows[-1].hash
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    async def _connection(self) -> AsyncConnection:
        """The sink's own connection: one writer needs one, and keeping it saves a checkout per commit."""
        if self._conn is None:
            self._conn = await self.engine.connect()
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except (SQLAlchemyError, OSError):
                log.warning("audit_connection_close_failed")

    def _spooled(self) -> bool:
        return self.spool is not None and self.spool.exists() and self.spool.stat().st_size > 0

    def _append_spool(self, rows: list[_Row]) -> None:
        assert self.spool is not None
        self.spool.parent.mkdir(parents=True, exist_ok=True)
        with open(self.spool, "ab") as fh:
            for row in rows:
                fh.write(orjson.dumps(row.values()) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())

    async def replay_spool(self) -> int:
        """Move spooled records into the database (in one transaction), then empty the spool."""
        if self.spool is None or not self.spool.exists():
            return 0
        lines = [orjson.loads(line) for line in self.spool.read_bytes().splitlines() if line.strip()]
        if not lines:
            return 0
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(audit_events), lines)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("audit_spool_replay_failed", error=str(exc), records=len(lines))
            return 0
        self.spool.write_bytes(b"")
        log.info("audit_spool_replayed", records=len(lines))
        return len(lines)

    async def aclose(self) -> None:
        """Commit what is pending, then stop."""
        self._closing = True
        if self._restart is not None:
            self._restart.cancel()
            self._restart = None
        task = self._task
        if task is not None and not task.done():
            self._wake.set()  # the writer commits what is pending, then ends
            done, _ = await asyncio.wait({task}, timeout=self.write_timeout_s)
            if not done:
                task.cancel()
                await asyncio.wait({task})
        if self._pending:  # no writer took them (never started, or it died): committed here, or failed
            batch, self._pending = self._pending, []
            try:
                await self._commit(batch)
            finally:
                self._fail(batch, "the audit log closed before committing the record")
        await self._drop_connection()
        if self._direct is not None:
            await self._direct.aclose()
