"""Client idempotency keys (the IETF httpapi `Idempotency-Key` draft) for mutations, kept in the gateway's database.

A client that did not hear back from a mutation sends it again with the same `Idempotency-Key`. The
first request with a key *claims* it (a row in state `running`, held by a lease), runs, and keeps its
answer (state `done`) for `idempotency.ttl_s`; every later request with that key and the same request
gets those bytes back without anything being executed again, from any gateway instance sharing the
database and after a restart. Requests that arrive while the first still runs wait for its answer (an
event in this process, polling the row across processes), at most `idempotency.wait_s`.

- **Scope.** A key belongs to a principal (kind, subject, partner): two callers who pick the same key never
  see each other's answers. The row's primary key is a hash of both, so neither is stored as sent.
- **Fingerprint.** The key stands for one request: the same key with another document, operation name or
  variables is refused (`Reused`), because replaying the first answer to a different request would lie.
- **Leases.** The owner's process renews its lease while it runs; a row whose lease ran out belongs to a
  process that died, and the next retry takes it over (a conditional UPDATE: exactly one retry wins).
- **What is kept** (`storable`): answers a retry would get again anyway. A failure that may pass (a source
  down or slow, the audit log unavailable, a rate limit, an internal error, any 5xx) is not kept: the row
  is deleted and the retry runs.

Times are integer milliseconds since the epoch (the migration's columns), from an injectable clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Update,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.principal import Principal
from gateway.settings import IdempotencySettings
from sources.sql import SqliteWriter, write
from sources.tasks import failure_fields, watch

log = structlog.get_logger("gateway.idempotency")

#: As created by migration 0005 (gateway/migrations/versions/0005_operations.py).
idempotency_keys = Table(
    "idempotency_keys", MetaData(),
    Column("scope", String(64), primary_key=True),  # sha256 of the principal and the client's key
    Column("fingerprint", String(64), nullable=False),
    Column("state", String(8), nullable=False),  # running | done
    Column("owner", String(32), nullable=False),
    Column("status", Integer),
    Column("media_type", String(100)),
    Column("headers", Text),
    Column("body", LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")),
    Column("created_ms", BigInteger, nullable=False),
    Column("lease_until_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Index("idempotency_keys_expiry", "expires_ms"),
)

RUNNING = "running"
DONE = "done"

#: Top-level error codes of failures that may pass: an answer with one is not kept, so a retry runs again.
#: (An open circuit breaker is a source that failed and is given time: the same as it being unavailable.)
TRANSIENT_CODES = frozenset({"SOURCE_UNAVAILABLE", "SOURCE_TIMEOUT", "CIRCUIT_OPEN", "AUDIT_UNAVAILABLE",
                             "RATE_LIMITED", "INTERNAL_ERROR"})
#: Expired rows are deleted at most this often, by the claim that finds the time has come.
PURGE_EVERY_MS = 60_000
#: How often a request waiting for another process's answer reads the row again.
POLL_S = 0.03


def scope_of(principal: Principal, key: str) -> str:
    """The row's primary key: the principal who sent the key and the key, hashed (sha256 hex)."""
    raw = orjson.dumps([principal.kind.value, principal.subject, principal.partner_id, key])
    return hashlib.sha256(raw).hexdigest()


def fingerprint_of(document: str, operation_name: str | None, variables: Mapping[str, Any] | None) -> str:
    """What makes two requests the same request: the document (trusted document id, or `sha256:` of the
    text), the operation name and the variables, keys sorted so their order does not count."""
    raw = orjson.dumps([document, operation_name, variables or {}],
                       option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(raw).hexdigest()


def storable(status: int, body: Mapping[str, Any]) -> bool:
    """Whether an answer is kept for replay: below 500 and no top-level error that may pass on a retry."""
    if status >= 500:
        return False
    errors = body.get("errors") or ()
    return not any(isinstance(e, Mapping) and (e.get("extensions") or {}).get("code") in TRANSIENT_CODES
                   for e in errors)


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """An answer as it was sent: replayed byte for byte."""

    status: int
    media_type: str | None
    headers: tuple[tuple[str, str], ...]  # what a client needs again (Content-Type, Retry-After, ...)
    body: bytes


@dataclass(frozen=True, slots=True)
class Replay:
    """The key's request was answered before: send this answer again, execute nothing."""

    answer: StoredAnswer


@dataclass(frozen=True, slots=True)
class Reused:
    """The key was sent before with another request (document, operation name or variables)."""


@dataclass(frozen=True, slots=True)
class InUse:
    """The key's request is still running elsewhere and did not finish within `wait_s`."""

    retry_after_s: int


class Lease:
    """A claimed key: this request runs the operation, then keeps its answer (`complete`) or gives the key
    back (`release`). Its lease is renewed in the background until then; settling twice is a no-op."""

    def __init__(self, store: IdempotencyStore, scope: str, owner: str) -> None:
        self.store = store
        self.scope = scope
        self.owner = owner
        self.settled = False
        #: Set once settled: wakes the requests of this process waiting for the answer.
        self.finished = asyncio.Event()
        self._stop = asyncio.Event()
        self._renewal = watch(asyncio.create_task(store._renew(self, self._stop)), "idempotency_renewal_failed")

    async def complete(self, answer: StoredAnswer) -> None:
        """Keep `answer` for the key's retries; if that fails, give the key back (the failure is logged)."""
        if self.settled:
            return
        try:
            await self.store._keep(self, answer)
        except SQLAlchemyError as exc:
            log.error("idempotency_answer_not_kept", scope=self.scope, **failure_fields(exc))
            await self.release()
            return
        self._settle()

    async def release(self) -> None:
        """Give the key back: nothing kept, the next retry with it runs again."""
        if self.settled:
            return
        try:
            await self.store._drop(self)
        except SQLAlchemyError as exc:
            # The row stays `running` until its lease runs out; then a retry takes it over.
            log.error("idempotency_key_not_released", scope=self.scope, **failure_fields(exc))
        self._settle()

    def _settle(self) -> None:
        self.settled = True
        self._stop.set()
        self.store._finished(self)


Outcome = Lease | Replay | Reused | InUse


class IdempotencyStore:
    """The `idempotency_keys` table: claim a key, wait for its answer, replay it."""

    def __init__(self, engine: AsyncEngine, settings: IdempotencySettings, *,
                 clock: Callable[[], float] = time.time, poll_s: float = POLL_S) -> None:
        self.engine = engine
        self._sqlite = SqliteWriter.of(engine)
        self.ttl_ms = int(settings.ttl_s * 1000)
        self.lease_ms = int(settings.lease_s * 1000)
        self.wait_s = settings.wait_s
        self.clock = clock
        self.poll_s = poll_s
        self._running: dict[str, asyncio.Event] = {}  # scope -> the event of this process's lease on it
        self._purged_ms = 0

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()

    async def claim(self, scope: str, fingerprint: str) -> Outcome:
        """Claim the key for this request, or what to answer instead: a replay, a refusal, or 'still running'.

        Waits (at most `wait_s`) while the same request runs elsewhere, then answers with its outcome.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while True:
            now = self._now_ms()
            await self._purge_due(now)
            # A new owner per claim: a lease lost and claimed again, even in this process, is never confused.
            owner = uuid.uuid4().hex
            if await self._insert(scope, fingerprint, owner, now):
                return self._leased(scope, owner)
            row = await self._row(scope)
            if row is None:
                continue  # deleted since the insert failed: try again
            if row.expires_ms <= now and row.lease_until_ms <= now:
                await self._delete_expired(scope, now)  # counts as absent; whoever inserts next wins
                continue
            if row.fingerprint != fingerprint:
                return Reused()
            if row.state == DONE:
                return Replay(StoredAnswer(row.status, row.media_type,
                                           tuple((k, v) for k, v in orjson.loads(row.headers or "[]")),
                                           bytes(row.body or b"")))
            if row.lease_until_ms <= now:
                if await self._take_over(scope, row.owner, owner, now):
                    log.warning("idempotency_lease_taken_over", scope=scope, previous_owner=row.owner)
                    return self._leased(scope, owner)
                continue  # another retry won it: read the row again
            remaining = deadline - loop.time()
            if remaining <= 0:
                return InUse(max(1, math.ceil((row.lease_until_ms - now) / 1000)))
            await self._wait(scope, min(remaining, self.lease_ms / 1000))

    def _leased(self, scope: str, owner: str) -> Lease:
        lease = Lease(self, scope, owner)
        self._running[scope] = lease.finished
        return lease

    async def _wait(self, scope: str, at_most_s: float) -> None:
        """Until the running request of this process settles; else (it runs elsewhere) one poll interval."""
        event = self._running.get(scope)
        if event is None:
            await asyncio.sleep(min(at_most_s, self.poll_s))
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), at_most_s)

    async def _insert(self, scope: str, fingerprint: str, owner: str, now: int) -> bool:
        values = {"scope": scope, "fingerprint": fingerprint, "state": RUNNING, "owner": owner, "created_ms": now,
                  "lease_until_ms": now + self.lease_ms, "expires_ms": now + self.ttl_ms}
        try:  # on every mutation with a key: on a SQLite file, one thread hop instead of several
            await write(self.engine, self._sqlite, [(("idempotency", "claim"), lambda: insert(idempotency_keys).values(
                {name: bindparam(name) for name in values}), values)])
        except (IntegrityError, sqlite3.IntegrityError):
            return False
        return True

    async def _row(self, scope: str) -> Row[Any] | None:
        async with self.engine.connect() as conn:
            row: Row[Any] | None = (await conn.execute(
                select(idempotency_keys).where(idempotency_keys.c.scope == scope))).first()
        return row

    async def _delete_expired(self, scope: str, now: int) -> None:
        t = idempotency_keys.c
        async with self.engine.begin() as conn:
            await conn.execute(delete(idempotency_keys).where(t.scope == scope, t.expires_ms <= now,
                                                              t.lease_until_ms <= now))

    async def _take_over(self, scope: str, previous: str, owner: str, now: int) -> bool:
        """The conditional UPDATE only one retry can win: the row must still be the dead owner's."""
        t = idempotency_keys.c
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(idempotency_keys)
                .where(t.scope == scope, t.state == RUNNING, t.owner == previous, t.lease_until_ms <= now)
                .values(owner=owner, lease_until_ms=now + self.lease_ms, expires_ms=now + self.ttl_ms))
        return bool(result.rowcount == 1)

    async def _renew(self, lease: Lease, stop: asyncio.Event) -> None:
        """Keep the lease while the request runs: renewed every third of `lease_s`."""
        t = idempotency_keys.c
        interval = self.lease_ms / 3000
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                return
            now = self._now_ms()
            try:
                async with self.engine.begin() as conn:
                    result = await conn.execute(
                        update(idempotency_keys)
                        .where(t.scope == lease.scope, t.owner == lease.owner, t.state == RUNNING)
                        .values(lease_until_ms=now + self.lease_ms))
            except SQLAlchemyError as exc:  # the next renewal may get through before the lease runs out
                log.warning("idempotency_lease_not_renewed", scope=lease.scope, **failure_fields(exc))
                continue
            if result.rowcount != 1 and not stop.is_set():
                log.warning("idempotency_lease_lost", scope=lease.scope, owner=lease.owner)
                return

    async def _keep(self, lease: Lease, answer: StoredAnswer) -> None:
        t = idempotency_keys.c
        now = self._now_ms()
        values = {"state": DONE, "status": answer.status, "media_type": answer.media_type,
                  "headers": orjson.dumps([list(h) for h in answer.headers]).decode(), "lease_until_ms": now,
                  "expires_ms": now + self.ttl_ms}
        # aiomysql (0.3) cannot send bytes with PyMySQL 2, which dropped the escaping function it imports: on
        # MySQL and MariaDB the body travels as hex text, unhexed by the server.
        hexed = self.engine.dialect.name in ("mysql", "mariadb")

        def statement() -> Update:
            body: Any = bindparam("body")
            changes: dict[str, Any] = {**{n: bindparam(n) for n in values}, "body": func.unhex(body) if hexed else body}
            return (update(idempotency_keys)
                    .where(t.scope == bindparam("b_scope"), t.owner == bindparam("b_owner"),
                           t.state == bindparam("b_state"))
                    .values(changes))

        params = {**values, "body": answer.body.hex() if hexed else answer.body, "b_scope": lease.scope,
                  "b_owner": lease.owner, "b_state": RUNNING}
        (kept,) = await write(self.engine, self._sqlite, [(("idempotency", "keep", hexed), statement, params)])
        if kept != 1:  # its lease ran out and a retry took the key over: that one's answer counts
            log.warning("idempotency_answer_not_kept_lease_lost", scope=lease.scope, owner=lease.owner)

    async def _drop(self, lease: Lease) -> None:
        t = idempotency_keys.c
        async with self.engine.begin() as conn:
            await conn.execute(delete(idempotency_keys).where(t.scope == lease.scope, t.owner == lease.owner,
                                                              t.state == RUNNING))

    def _finished(self, lease: Lease) -> None:
        if self._running.get(lease.scope) is lease.finished:
            del self._running[lease.scope]
        lease.finished.set()

    async def _purge_due(self, now: int) -> None:
        if now - self._purged_ms >= PURGE_EVERY_MS:
            self._purged_ms = now
            await self.purge(now)

    async def purge(self, now: int | None = None) -> int:
        """Delete expired keys (a running one only once its lease ran out too); the number deleted."""
        now = self._now_ms() if now is None else now
        t = idempotency_keys.c
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(idempotency_keys).where(t.expires_ms <= now, t.lease_until_ms <= now))
        return int(result.rowcount)
