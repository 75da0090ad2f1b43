"""Fixtures for the database servers of this machine.

`postgres_url` and `mariadb_url` each give a fresh, empty database that is dropped afterwards. When a
server is not reachable the test is skipped locally, but fails under CI=true: CI must test those paths.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

POSTGRES_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
MARIADB_ADMIN = os.environ.get("TEST_MARIADB_URL", "mysql+aiomysql://root@127.0.0.1:3306/test")


def _unavailable(server: str, exc: Exception) -> None:
    message = f"{server} is not reachable: {type(exc).__name__}: {exc}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: this path must be tested)")
    pytest.skip(message)


async def _fresh_database(admin_url: str, server: str) -> AsyncIterator[str]:
    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"CREATE DATABASE {name}"))
    except (OSError, Exception) as exc:
        await engine.dispose()
        _unavailable(server, exc)
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        async with engine.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        await engine.dispose()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async for url in _fresh_database(POSTGRES_ADMIN, "PostgreSQL"):
        yield url


@pytest.fixture
async def mariadb_url() -> AsyncIterator[str]:
    async for url in _fresh_database(MARIADB_ADMIN, "MariaDB"):
        yield url


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The machine's Redis (database 15, flushed before and after)."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    client = Redis.from_url(url, socket_connect_timeout=2)
    try:
        await client.flushdb()
    except (RedisError, OSError) as exc:
        await client.aclose()
        _unavailable("Redis", exc)
    try:
        yield url
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture
async def nats_bus_names() -> AsyncIterator[tuple[str, str, str]]:
    """(url, stream, subject prefix) on the machine's NATS with JetStream: a fresh stream, deleted after."""
    import nats
    from nats.errors import Error as NatsError

    url = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")
    try:
        client = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
    except (OSError, NatsError, TimeoutError) as exc:
        _unavailable("NATS", exc)
    suffix = uuid.uuid4().hex[:10].upper()
    stream, prefix = f"GWTEST_{suffix}", f"gwtest{suffix.lower()}"
    try:
        yield url, stream, prefix
    finally:
        with contextlib.suppress(NatsError):  # never provisioned by the test
            await client.jetstream().delete_stream(stream)
        await client.close()
