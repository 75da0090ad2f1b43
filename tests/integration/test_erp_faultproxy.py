"""The ERP fault proxy adds latency per statement and can cut the database off, over real PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from demo.erp.faultproxy import FaultProxy


@pytest.fixture
async def proxy(postgres_url: str) -> AsyncIterator[tuple[FaultProxy, str]]:
    url = make_url(postgres_url)
    proxy = FaultProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    try:
        yield proxy, url.set(port=proxy.port).render_as_string(hide_password=False)
    finally:
        await proxy.stop()


@pytest.mark.postgres
async def test_latency_is_added_per_statement(proxy: tuple[FaultProxy, str]) -> None:
    fault_proxy, url = proxy
    engine = create_async_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            fault_proxy.faults.latency_ms = 30
            started = time.perf_counter()
            for _ in range(3):
                await conn.execute(text("SELECT 1"))
            assert time.perf_counter() - started >= 0.09
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_outage_cuts_connections(proxy: tuple[FaultProxy, str]) -> None:
    fault_proxy, url = proxy
    engine = create_async_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        fault_proxy.set_outage(True)
        with pytest.raises((OSError, SQLAlchemyError)):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        fault_proxy.set_outage(False)
        await engine.dispose()
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()
