"""A background task that dies is noticed: logged once, compactly, with what it was doing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from aiocache import SimpleMemoryCache
from aiocache.serializers import NullSerializer
from structlog.testing import capture_logs

from sources.cache import CachePolicy, SourceCache
from sources.tasks import watch


async def test_a_task_that_fails_is_logged_once_without_local_variables() -> None:
    async def fails() -> None:
        secret_local = "never in a log"  # noqa: F841 - what a locals dump would show
        raise RuntimeError("boom")

    with capture_logs() as logs:
        task = watch(asyncio.create_task(fails(), name="worker"), "worker_failed", part="x")
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)  # done callbacks run on the next turn
    assert len(logs) == 1
    event = logs[0]
    assert (event["event"], event["task"], event["part"], event["error_type"], event["error"]) == (
        "worker_failed", "worker", "x", "RuntimeError", "boom")
    assert "fails" in event["traceback"] and "never in a log" not in str(event) and "exc_info" not in event


async def test_success_and_cancellation_are_not_failures() -> None:
    async def waits() -> None:
        await asyncio.sleep(10)

    with capture_logs() as logs:
        done = watch(asyncio.create_task(asyncio.sleep(0)), "failed")
        cancelled = watch(asyncio.create_task(waits()), "failed")
        await done
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        await asyncio.sleep(0)
    assert logs == []


async def test_a_stale_while_revalidate_refresh_that_dies_is_logged() -> None:
    now = [1000.0]
    cache = SourceCache(SimpleMemoryCache(serializer=NullSerializer()),
                        {"erp.items": CachePolicy(ttl_s=10, stale_while_revalidate_s=60)}, clock=lambda: now[0])
    calls = 0

    async def fetch(keys: Sequence[str]) -> Mapping[str, Any]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("the mapping broke")
        return {k: {"sku": k} for k in keys}

    try:
        assert await cache.many("erp", "items", ["A1"], None, fetch) == {"A1": {"sku": "A1"}}
        now[0] += 30  # stale: served, and refreshed in the background
        with capture_logs() as logs:
            assert await cache.many("erp", "items", ["A1"], None, fetch) == {"A1": {"sku": "A1"}}
            await cache.drain()
            await asyncio.sleep(0)
        failed = [e for e in logs if e["event"] == "cache_refresh_failed"]
        assert len(failed) == 1 and failed[0]["source"] == "erp" and failed[0]["error"] == "the mapping broke"
    finally:
        await cache.aclose()
