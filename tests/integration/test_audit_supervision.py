"""The audit writer under failure: a writer task that dies is noticed, the records it held fail instead of
waiting forever, it is restarted, and the chain it goes on writing verifies; while it keeps failing, or
hangs, requests are refused (AUDIT_UNAVAILABLE) within the configured bound, never left waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from structlog.testing import capture_logs

from auth.audit import AuditRecord
from demo.world import World
from gateway.audit.sink import AuditUnavailable, SqlAuditSink, audit_events
from gateway.audit.store import verify
from gateway.db import upgrade
from tests.integration.gateway_harness import running_gateway

HANG_GUARD_S = 5.0  # only so that a regression fails instead of hanging the suite


def _record(n: int) -> AuditRecord:
    return AuditRecord(id=f"id{n}", time=f"2026-11-25T00:00:{n % 60:02d}.000000+00:00", request_id=f"r{n}",
                       client_ip="127.0.0.1", subject="s", principal_kind="user", token_id=None, partner_id=None,
                       operation_type="query", operation_name="Q", document=None)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")
    await upgrade(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def sink(engine: AsyncEngine) -> AsyncIterator[SqlAuditSink]:
    sink = SqlAuditSink(engine, window_ms=1, write_timeout_s=2.0)
    await sink.start()
    try:
        yield sink
    finally:
        await asyncio.wait_for(sink.aclose(), HANG_GUARD_S)


def failing(times: int | None, real: Callable[..., Any]) -> Callable[..., Any]:
    """`real`, except that its first `times` calls (all, for None) raise a RuntimeError."""
    calls = 0

    def chain(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if times is None or calls <= times:
            raise RuntimeError("a bug in the writer")
        return real(*args)

    return chain


async def _outcomes(sink: SqlAuditSink, numbers: range) -> list[BaseException | None]:
    """Write the records concurrently; each write's exception, or None once committed."""
    results = await asyncio.wait_for(asyncio.gather(*(sink.write(_record(n)) for n in numbers),
                                                    return_exceptions=True), HANG_GUARD_S)
    return list(results)


async def _stored(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count: int = (await conn.execute(select(func.count()).select_from(audit_events))).scalar_one()
    return count


async def test_a_writer_that_dies_once_fails_what_it_held_and_recovers(sink: SqlAuditSink, engine: AsyncEngine,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert await _outcomes(sink, range(3)) == [None, None, None]
    monkeypatch.setattr(sink, "_chain", failing(1, sink._chain))
    with capture_logs() as logs:
        held = await _outcomes(sink, range(3, 8))  # one batch: the one the writer dies holding
        assert all(isinstance(r, AuditUnavailable) for r in held), held
        later = await _outcomes(sink, range(8, 20))  # the restarted writer commits them
    assert later == [None] * 12
    deaths = [e for e in logs if e["event"] == "audit_writer_died"]
    assert len(deaths) == 1 and "RuntimeError" in deaths[0]["error"] and "exc_info" not in deaths[0]
    assert "Traceback" in deaths[0]["traceback"]  # compact: file, line and code of the innermost frames
    result = await verify(engine)
    assert result.ok and result.records == 15 == await _stored(engine)  # every write told the truth


async def test_records_waiting_when_the_writer_dies_are_committed_by_its_successor(
        sink: SqlAuditSink, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    sink.max_batch = 2  # five records: the writer dies on the first two, three wait behind them
    monkeypatch.setattr(sink, "_chain", failing(1, sink._chain))
    outcomes = await _outcomes(sink, range(5))
    assert [type(r) for r in outcomes[:2]] == [AuditUnavailable, AuditUnavailable]
    assert outcomes[2:] == [None, None, None]
    assert (await verify(engine)).ok and await _stored(engine) == 3


async def test_a_writer_that_keeps_dying_fails_writes_closed(sink: SqlAuditSink, engine: AsyncEngine,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    real = sink._chain
    monkeypatch.setattr(sink, "_chain", failing(None, real))
    with capture_logs() as logs:
        for round_ in range(5):  # one after another: each meets a writer that died (or is restarting)
            outcomes = await _outcomes(sink, range(round_ * 3, round_ * 3 + 3))
            assert all(isinstance(r, AuditUnavailable) for r in outcomes), outcomes
    assert len([e for e in logs if e["event"] == "audit_writer_died"]) >= 5
    assert await _stored(engine) == 0
    monkeypatch.setattr(sink, "_chain", real)  # the fault is gone: the writer is restarted and commits
    assert await _outcomes(sink, range(100, 104)) == [None] * 4
    assert (await verify(engine)).ok and await _stored(engine) == 4


async def test_a_hung_writer_fails_writes_closed_within_the_bound(engine: AsyncEngine,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    sink = SqlAuditSink(engine, window_ms=1, write_timeout_s=0.2)

    async def hang(batch: Any) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(sink, "_commit", hang)
    await sink.start()
    try:
        first = await _outcomes(sink, range(1))  # held by the hung commit
        second = await _outcomes(sink, range(1, 3))  # waiting behind it: withdrawn at the deadline
        assert all(isinstance(r, AuditUnavailable) for r in first + second)
        assert sink._pending == []  # nothing left to be committed behind its writer's back
    finally:
        await asyncio.wait_for(sink.aclose(), HANG_GUARD_S)  # waits write_timeout_s, then stops the writer
    assert await _stored(engine) == 0


async def test_a_request_meeting_a_dying_audit_writer_is_answered_503(world: World, erp_sqlite_url: str,
                                                                      tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db", audit={"write_timeout_s": 1}) as gw:
        sink: SqlAuditSink = gw.app.state.audit.sink
        real = sink._chain
        monkeypatch.setattr(sink, "_chain", failing(None, real))
        r = await asyncio.wait_for(gw.client.post("/graphql", json={"query": "{ warehouses { code } }"}),
                                   HANG_GUARD_S)
        assert r.status_code == 503 and r.json()["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
        monkeypatch.setattr(sink, "_chain", real)
        r = await asyncio.wait_for(gw.client.post("/graphql", json={"query": "{ warehouses { code } }"}),
                                   HANG_GUARD_S)
        assert r.status_code == 200
        assert (await verify(sink.engine)).ok
