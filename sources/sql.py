"""SQL transport: SQLAlchemy 2 async engine per source, each statement time-bounded and recorded."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from sqlalchemy import ARRAY, ClauseElement, ColumnElement, Executable, Select, any_, bindparam, event, text
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import UpdateBase

from sources.base import Health, SourceCall, ms_since, record_call
from sources.errors import SourceTimeout, SourceUnavailable
from sources.resilience import Resilience, ResiliencePolicy

T = TypeVar("T")


def sqlite_pragmas(dbapi_connection: Any, _: Any = None) -> None:
    """WAL lets readers and one writer work at once; FULL sync makes a commit survive a crash."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_directory(url: str) -> None:
    """A SQLite file's folder must exist before the first connection creates the file."""
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_write_connection(dbapi_connection: Any, _: Any = None) -> None:
    """The driver's own transaction handling off (SQLAlchemy's BEGIN is then the only one), then the pragmas."""
    dbapi_connection.isolation_level = None
    sqlite_pragmas(dbapi_connection)


def _sqlite_begin_immediate(conn: Any) -> None:
    """Take the write lock at BEGIN, before the transaction's first read (see `make_write_engine`)."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_write_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    """An engine for writes: real transactions, in which a write reads rows only after locking them.

    PostgreSQL and MariaDB run READ COMMITTED, the writer locking rows with SELECT ... FOR UPDATE: each
    statement sees what committed before it, so what a write reads once it holds a lock (a customer's open
    orders, under the customer's row) includes every write that held that lock before it. MariaDB's
    default, REPEATABLE READ, would instead read from a snapshot taken at the transaction's first plain
    (unlocked) read, which may come before its first lock.
    Connections are pinged on checkout: a write on a connection the server dropped would fail after
    taking locks and doing part of its work, which costs more than the ping.

    SQLite has no row locks: every transaction starts with BEGIN IMMEDIATE, which takes the database's
    write lock before the first read. A deferred BEGIN would let two transactions read the same stock,
    then one of them fail with SQLITE_BUSY when it tries to write. The driver's own transaction handling
    is switched off so that BEGIN is SQLAlchemy's alone (SQLAlchemy's pysqlite/aiosqlite recipe); the
    pragmas are those of the read engine (WAL, synchronous FULL, busy timeout).
    """
    if url.startswith("sqlite"):
        _sqlite_directory(url)
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=0)
        event.listen(engine.sync_engine, "connect", _sqlite_write_connection)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_recycle=1800, pool_pre_ping=True,
                               isolation_level="READ COMMITTED")


def make_engine(url: str, *, pool_size: int = 10, read_only: bool = False) -> AsyncEngine:
    """An async engine with pooling suited to the backend (SQLite files have no server to pool for).

    A `read_only` engine runs each statement in autocommit: no BEGIN before it and no ROLLBACK when the
    connection goes back to the pool, so a read costs one round trip to the database instead of three.
    No engine pings on checkout (another round trip per statement): a connection the server dropped fails
    its statement, SQLAlchemy then recycles the pool, and the source's retry policy repeats the read.
    """
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None} if read_only else {}
    if url.startswith("sqlite"):
        _sqlite_directory(url)
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, **options)
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800, **options)


class DriverError(Exception):
    """A statement run on the driver itself failed (its own exception is the cause)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A read statement compiled once (see `SqlTransport.prepare`)."""

    statement: Executable
    sql: str | None = None  # the driver's own text, or None: SQLAlchemy runs the statement
    #: per positional parameter of `sql`: its name, its value unless given at execution, its type conversion
    binds: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...] = ()


async def _driver_rows(conn: AsyncConnection, prepared: Prepared, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A prepared statement's rows, run by asyncpg on this pooled connection (its statement cache included)."""
    args = []
    for name, default, process in prepared.binds:
        value = params.get(name, default)
        args.append(value if process is None else process(value))
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    try:
        records = await driver.fetch(prepared.sql, *args)
    except BaseException as exc:
        # Whatever state the driver is in now (cancelled mid-statement, connection lost), it does not go
        # back to the pool; a server error (a bad statement) is a failure of this read like any other.
        await conn.invalidate()
        if isinstance(exc, Exception) and not isinstance(exc, OSError | TimeoutError | asyncio.CancelledError):
            raise DriverError(f"{type(exc).__name__}: {exc}") from exc
        raise
    return [dict(record) for record in records]


class SqlTransport:
    """Runs read statements for one source: one pooled engine, a deadline per statement."""

    def __init__(self, name: str, url: str, *, timeout_s: float, pool_size: int = 10,
                 engine: AsyncEngine | None = None, resilience: Resilience | None = None) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self.resilience = resilience or Resilience(name, ResiliencePolicy(retries=0), timeout_s)
        self.engine = engine or make_engine(url, pool_size=pool_size, read_only=True)
        self._array_keys = self.engine.dialect.name == "postgresql"

    def key_in(self, column: Any, name: str = "keys", values: Sequence[Any] | None = None) -> ColumnElement[bool]:
        """`column IN <parameter name>`, written so that the statement's text does not depend on how many keys
        there are; the keys go in at execution (`params={name: transport.key_values(keys)}`), or now as
        `values`.

        Drivers that prepare statements (asyncpg) pay a round trip to prepare each new text; with one text
        per query shape the prepared statement is reused. PostgreSQL takes the keys as one array parameter
        (`= ANY($1)`, still an index lookup); elsewhere the list expands at execution, padded to the next
        power of two by `key_values`, so a batch of any size uses one of a handful of texts.
        """
        if self._array_keys:
            array = ARRAY(column.type)
            param = bindparam(name, type_=array) if values is None else bindparam(name, list(values), type_=array)
            return column == any_(param)  # type: ignore[no-any-return]
        if values is None:
            return column.in_(bindparam(name, expanding=True))  # type: ignore[no-any-return]
        return column.in_(self.key_values(values))  # type: ignore[no-any-return]

    @property
    def _instrumented(self) -> bool:
        """Whether something listens to statement execution (tracing, statement counts): it then sees every
        statement, since every statement goes through SQLAlchemy."""
        dispatch = self.engine.sync_engine.dispatch
        return bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute)

    def key_values(self, keys: Sequence[Any]) -> list[Any]:
        """The value of a `key_in` parameter for these keys."""
        padded = list(keys)
        if padded and not self._array_keys:
            padded.extend(padded[-1:] * ((1 << (len(padded) - 1).bit_length()) - len(padded)))
        return padded

    def prepare(self, statement: Executable) -> Prepared:
        """A statement to run many times: compiled once here rather than at every execution.

        On asyncpg a prepared SELECT whose parameters and columns need no type conversion runs as its
        compiled text on the pooled connection's driver: SQLAlchemy's per-execution work (cache key,
        execution context, result wrapping) is about 0.45 ms of CPU per statement, half of all its cost.
        Anything else runs through SQLAlchemy as usual, and so does everything while a listener watches
        statement execution (tracing, tests that count statements).
        """
        dialect = self.engine.dialect
        if dialect.driver != "asyncpg" or not isinstance(statement, Select):
            return Prepared(statement)
        if any(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in statement.selected_columns):
            return Prepared(statement)
        compiled = statement.compile(dialect=dialect)
        if compiled.post_compile_params or compiled.literal_execute_params or compiled.positiontup is None:
            return Prepared(statement)  # parameters that expand at execution (IN lists): SQLAlchemy renders them
        defaults = compiled.params
        binds = tuple((name, defaults.get(name), compiled.binds[name].type.dialect_impl(dialect).bind_processor(
            dialect)) for name in compiled.positiontup)
        return Prepared(statement, str(compiled), binds)

    async def rows(self, operation: str, statement: Executable | Prepared, *, params: Mapping[str, Any] | None = None,
                   keys: int = 0) -> Sequence[dict[str, Any]]:
        """All rows of a statement as plain dicts (cacheable, and free of driver types); reads are retried."""
        return await self.resilience.call(operation, lambda: self._rows_once(operation, statement, params, keys),
                                          idempotent=True)

    async def _rows_once(self, operation: str, statement: Executable | Prepared, params: Mapping[str, Any] | None,
                         keys: int) -> Sequence[dict[str, Any]]:
        started = time.perf_counter()
        status = "ok"
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self.engine.connect() as conn:
                    if isinstance(statement, Prepared):
                        if statement.sql is not None and not self._instrumented:
                            return await _driver_rows(conn, statement, params or {})
                        statement = statement.statement
                    result = await conn.execute(statement, params)
                    # Plain str keys (drivers may hand out str subclasses), so rows serialise for the cache;
                    # zipped from plain tuples, which is several times cheaper than row mappings.
                    names = [str(k) for k in result.keys()]  # noqa: SIM118 - a result, not a dict
                    return [dict(zip(names, row, strict=True)) for row in result]
        except TimeoutError as exc:
            status = SourceTimeout.code
            raise SourceTimeout(self.name, f"{operation} exceeded {self.timeout_s}s") from exc
        except (SQLAlchemyError, OSError, DriverError) as exc:
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


class SqliteWriter:
    """Write transactions on a SQLite file in one hop to one thread, on the writer's own connection.

    Through SQLAlchemy's async SQLite driver every statement, the BEGIN and the COMMIT are thread round trips
    that each wait for the event loop (a short transaction: 2-3 ms); here the whole transaction is one
    function run on the writer's thread (WAL, synchronous=FULL, busy timeout: as the engine's connections),
    so it costs one hop. Statements are SQLAlchemy Core, compiled once per shape with named parameters.
    """

    #: One writer per file in a process, shared by its users (the audit sink, the saga log, idempotency keys):
    #: on one connection their transactions queue in the writer's thread, where on several they would wait
    #: for SQLite's write lock in its busy handler, which sleeps 1, 2, 5, 10 ... ms between tries.
    _shared: ClassVar[dict[str, SqliteWriter]] = {}

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._conn: sqlite3.Connection | None = None
        self._sql: dict[Hashable, tuple[str, dict[str, Any]]] = {}
        self._users = 0

    @classmethod
    def of(cls, engine: AsyncEngine) -> SqliteWriter | None:
        """The writer for the engine's database if it is a SQLite file, else None (use the engine). Each
        user calls `close()` once when done with it."""
        url = engine.url
        database = url.database
        if url.get_backend_name() != "sqlite" or not database or database == ":memory:" \
                or database.startswith("file:"):
            return None
        path = str(Path(database).resolve())
        writer = cls._shared.get(path)
        if writer is None:
            writer = cls._shared[path] = cls(path)
        writer._users += 1
        return writer

    def sql(self, shape: Hashable, build: Callable[[], ClauseElement]) -> tuple[str, dict[str, Any]]:
        """The SQL of a statement shape, and the values of the parameters it binds itself (`attempts + 1`)."""
        found = self._sql.get(shape)
        if found is None:
            compiled = build().compile(dialect=sqlite_dialect.dialect(paramstyle="named"))
            found = self._sql[shape] = (str(compiled), dict(compiled.params))
        return found

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            sqlite_pragmas(self._conn)
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            result = work(conn)
            conn.execute("COMMIT")
            return result
        except sqlite3.Error:
            # The connection may be unusable now (a lost file, a full disk): the next transaction opens another.
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            self._close()
            raise
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)` in one transaction on the writer's thread (sqlite3.Error propagates)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._run, work)

    def close(self) -> None:
        """One user is done; the last one closes the connection and stops the thread."""
        self._users -= 1
        if self._users > 0:
            return
        if self._shared.get(self.path) is self:
            del self._shared[self.path]
        if self._conn is not None:
            self._thread.submit(self._close).result()
        self._thread.shutdown(wait=True)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


#: One statement of a write transaction: a shape naming it (its SQL is compiled once per shape), how to build
#: it with named parameters, and its parameters (a list: the statement runs once for each).
Statement = tuple[Hashable, Callable[[], UpdateBase], dict[str, Any] | list[dict[str, Any]]]


async def write(engine: AsyncEngine, writer: SqliteWriter | None, statements: Sequence[Statement]) -> list[int]:
    """Statements in one transaction, each one's row count back: on a SQLite file in one hop to its writer
    (`SqliteWriter.of(engine)`), elsewhere through SQLAlchemy."""
    if writer is not None:
        def run(conn: sqlite3.Connection) -> list[int]:
            counts = []
            for shape, build, params in statements:
                sql, own = writer.sql(shape, build)
                cursor = (conn.executemany(sql, [{**own, **p} for p in params]) if isinstance(params, list)
                          else conn.execute(sql, {**own, **params}))
                counts.append(cursor.rowcount)
            return counts

        return await writer.run(run)
    async with engine.begin() as conn:
        return [(await conn.execute(build(), params)).rowcount for _, build, params in statements]
