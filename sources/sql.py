"""SQL transport: SQLAlchemy 2 async engine per source, each statement time-bounded and recorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Executable, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sources.base import Health, SourceCall, ms_since, record_call
from sources.errors import SourceTimeout, SourceUnavailable
from sources.resilience import Resilience, ResiliencePolicy


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    """WAL lets readers and one writer work at once; FULL sync makes a commit survive a crash."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine with pooling suited to the backend (SQLite files have no server to pool for)."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=0)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                               pool_recycle=1800)


class SqlTransport:
    """Runs read statements for one source: one pooled engine, a deadline per statement."""

    def __init__(self, name: str, url: str, *, timeout_s: float, pool_size: int = 10,
                 engine: AsyncEngine | None = None, resilience: Resilience | None = None) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self.resilience = resilience or Resilience(name, ResiliencePolicy(retries=0), timeout_s)
        self.engine = engine or make_engine(url, pool_size=pool_size)

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
