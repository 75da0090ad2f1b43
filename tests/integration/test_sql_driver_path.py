"""Prepared reads on PostgreSQL run on asyncpg itself (sources.sql): their failures look like any other read's.

A dropped connection, a statement past its deadline and a statement the server refuses each fail that one
read with the source's error, and the connection is not handed to the next read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Integer, String, column, func, select, table, text
from sqlalchemy.ext.asyncio import create_async_engine

from sources.errors import SourceTimeout, SourceUnavailable
from sources.sql import Prepared, SqlTransport

PROBE = table("gw_probe", column("id", Integer), column("name", String))


@pytest.fixture
async def transport(postgres_url: str) -> AsyncIterator[SqlTransport]:
    admin = create_async_engine(postgres_url)
    async with admin.begin() as conn:
        await conn.execute(text("CREATE TABLE gw_probe (id integer PRIMARY KEY, name varchar(20))"))
        await conn.execute(text("INSERT INTO gw_probe VALUES (1, 'one'), (2, 'two'), (3, 'three')"))
    await admin.dispose()
    sql = SqlTransport("erp", postgres_url, timeout_s=1.0, pool_size=1)
    try:
        yield sql
    finally:
        await sql.aclose()


def _by_key(transport: SqlTransport) -> Prepared:
    return transport.prepare(select(PROBE.c.id, PROBE.c.name).where(transport.key_in(PROBE.c.id))
                             .order_by(PROBE.c.id))


@pytest.mark.postgres
async def test_prepared_reads_run_on_the_driver_with_fresh_keys(transport: SqlTransport) -> None:
    by_key = _by_key(transport)
    assert by_key.sql is not None and "ANY" in by_key.sql
    assert await transport.rows("probe", by_key, params={"keys": [3, 1]}) == [
        {"id": 1, "name": "one"}, {"id": 3, "name": "three"}]
    assert await transport.rows("probe", by_key, params={"keys": [2, 9]}) == [{"id": 2, "name": "two"}]
    assert await transport.rows("probe", by_key, params={"keys": []}) == []
    # A value fixed in the statement (the limit) goes with it; an IN list of literals still expands.
    limited = transport.prepare(select(PROBE.c.id).order_by(PROBE.c.id).limit(2))
    assert limited.sql is not None
    assert await transport.rows("probe", limited) == [{"id": 1}, {"id": 2}]
    listed = transport.prepare(select(PROBE.c.id).where(PROBE.c.name.in_(["one", "two"])).order_by(PROBE.c.id))
    assert listed.sql is None
    assert await transport.rows("probe", listed) == [{"id": 1}, {"id": 2}]


@pytest.mark.postgres
async def test_a_dropped_connection_fails_one_read_and_is_not_reused(transport: SqlTransport,
                                                                     postgres_url: str) -> None:
    pid = transport.prepare(select(func.pg_backend_pid().label("pid")))
    assert pid.sql is not None
    before = (await transport.rows("pid", pid))[0]["pid"]
    admin = create_async_engine(postgres_url)
    async with admin.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": before})
    await admin.dispose()
    with pytest.raises(SourceUnavailable):
        await transport.rows("pid", pid)
    after = (await transport.rows("pid", pid))[0]["pid"]
    assert after != before


@pytest.mark.postgres
async def test_a_read_past_its_deadline_times_out_and_its_connection_is_dropped(transport: SqlTransport) -> None:
    pid = transport.prepare(select(func.pg_backend_pid().label("pid")))
    before = (await transport.rows("pid", pid))[0]["pid"]
    slow = transport.prepare(select(func.pg_sleep(5).label("slept")))
    assert slow.sql is not None
    with pytest.raises(SourceTimeout):
        await transport.rows("slow", slow)
    assert (await transport.rows("pid", pid))[0]["pid"] != before  # a new connection, not one mid-statement


@pytest.mark.postgres
async def test_a_statement_the_server_refuses_is_a_source_error(transport: SqlTransport) -> None:
    missing = table("gw_no_such_table", column("id", Integer))
    refused = transport.prepare(select(missing.c.id).where(transport.key_in(missing.c.id)))
    assert refused.sql is not None
    with pytest.raises(SourceUnavailable, match="UndefinedTableError"):
        await transport.rows("missing", refused, params={"keys": [1]})
    assert await transport.rows("probe", _by_key(transport), params={"keys": [1]}) == [{"id": 1, "name": "one"}]
