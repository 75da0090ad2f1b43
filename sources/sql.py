"""SQL transport: SQLAlchemy 2 async engine per source, each statement time-bounded and recorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, Executable, any_, bindparam, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sources.base import Health, SourceCall, ms_since, record_call
from sources.errors import SourceTimeout, SourceUnavailable
from sources.resilience import Resilience, ResiliencePolicy


def sqlite_pragmas(dbapi_connection: Any, _: Any = None) -> None:
    """WAL lets readers and one writer work at once; FULL sync makes a commit survive a crash."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, *, pool_size: int = 10, read_only: bool = False) -> AsyncEngine:
    """An async engine with pooling suited to the backend (SQLite files have no server to pool for).

    A `read_only` engine runs each statement in autocommit: no BEGIN before it and no ROLLBACK when the
    connection goes back to the pool, so a read costs one round trip to the database instead of three.
    No engine pings on checkout (another round trip per statement): a connection the server dropped fails
    its statement, SQLAlchemy then recycles the pool, and the source's retry policy repeats the read.
    """
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None} if read_only else {}
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, **options)
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800, **options)


class SqlTransport:
    """Runs read statements for one source: one pooled engine, a deadline per statement."""

    def __init__(self, name: str, url: str, *, timeout_s: float, pool_size: int = 10,
                 engine: AsyncEngine | None = None, resilience: Resilience | None = None) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self.resilience = resilience or Resilience(name, ResiliencePolicy(retries=0), timeout_s)
        self.engine = engine or make_engine(url, pool_size=pool_size, read_only=True)
        self._array_keys = self.engine.dialect.name == "postgresql"

    def key_in(self, column: Any, keys: Sequence[Any]) -> ColumnElement[bool]:
        """`column IN keys`, written so that the statement's text does not depend on how many keys there are.

        Drivers that prepare statements (asyncpg) pay a round trip to prepare each new text; with one text
        per query shape the prepared statement is reused. PostgreSQL takes the keys as one array parameter
        (`= ANY($1)`, still an index lookup); elsewhere the list is padded to the next power of two by
        repeating its last key, so a batch of any size uses one of a handful of texts.
        """
        if self._array_keys:
            return column == any_(bindparam(None, list(keys), type_=ARRAY(column.type)))  # type: ignore[no-any-return]
        padded = list(keys)
        if padded:
            padded.extend(padded[-1:] * ((1 << (len(padded) - 1).bit_length()) - len(padded)))
        return column.in_(padded)  # type: ignore[no-any-return]

    async def rows(self, operation: str, statement: Executable, *, keys: int = 0) -> Sequence[dict[str, Any]]:
        """All rows of a statement as plain dicts (cacheable, and free of driver types); reads are retried."""
        return await self.resilience.call(operation, lambda: self._rows_once(operation, statement, keys),
                                          idempotent=True)

    async def _rows_once(self, operation: str, statement: Executable, keys: int) -> Sequence[dict[str, Any]]:
        started = time.perf_counter()
        status = "ok"
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self.engine.connect() as conn:
                    result = await conn.execute(statement)
                    # Plain str keys (drivers may hand out str subclasses), so rows serialise for the cache.
                    return [{str(k): v for k, v in row.items()} for row in result.mappings()]
        except TimeoutError as exc:
            status = SourceTimeout.code
            raise SourceTimeout(self.name, f"{operation} exceeded {self.timeout_s}s") from exc
        except (SQLAlchemyError, OSError) as exc:
            status = SourceUnavailable.code
            raise SourceUnavailable(self.name, f"{operation} failed: {exc}") from exc
        finally:
            record_call(SourceCall(self.name, operation, status, ms_since(started), keys))

    async def health(self) -> Health:
        try:
            await self.rows("health", text("SELECT 1"))
        except (SourceTimeout, SourceUnavailable) as exc:
            return Health(self.name, False, exc.public_message)
        return Health(self.name, True)

    async def aclose(self) -> None:
        await self.engine.dispose()
