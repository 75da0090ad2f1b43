"""The audit trail: a record per operation (denied and rejected ones too), committed before the
answer, hash-chained, tamper-evident, readable by audit:read only; fail closed or spool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from auth.audit import AuditRecord
from demo.world import World
from gateway.audit.sink import SqlAuditSink, metadata
from gateway.audit.store import verify
from gateway.db import upgrade
from tests.integration.gateway_harness import Harness, running_gateway

EVENTS = """query($f: AuditEventFilter) { auditEvents(first: 50, filter: $f) { edges { node {
  requestId subject principalKind partner operationType operationName document fields piiFields variablesHash
  outcome codes httpStatus upstream { source operation status } } } } }"""


async def _events(gw: Harness, **flt: Any) -> list[dict[str, Any]]:
    body = await gw.query(EVENTS, {"f": flt or None})
    assert "errors" not in body, body
    return [e["node"] for e in body["data"]["auditEvents"]["edges"]]


async def _by_request(gw: Harness, request_id: str) -> dict[str, Any]:
    found = [e for e in await _events(gw) if e["requestId"] == request_id]
    assert len(found) == 1, found
    return found[0]


async def test_a_query_is_recorded_with_fields_pii_and_upstream_calls(gw: Harness) -> None:
    r = await gw.client.post("/graphql", headers={"x-request-id": "audit-q-1"}, json={
        "query": "query C($n: String!) { customer(number: $n) { name email } }", "variables": {"n": "100001"}})
    assert r.status_code == 200
    event = await _by_request(gw, "audit-q-1")
    assert event["operationType"] == "query" and event["operationName"] == "C"
    assert event["fields"] == ["Query.customer", "Customer.name", "Customer.email"]
    assert event["piiFields"] == ["Customer.email"]
    assert event["variablesHash"].startswith("hmac-sha256:") and "100001" not in event["variablesHash"]
    assert event["document"].startswith("sha256:") and event["outcome"] == "ok" and event["httpStatus"] == 200
    assert {(u["source"], u["operation"]) for u in event["upstream"]} >= {("crm", "customers")}
    assert event["principalKind"] == "user"


async def test_denied_and_rejected_requests_are_recorded(gw: Harness) -> None:
    await gw.client.post("/graphql", headers={"x-request-id": "audit-401", "authorization": "Bearer nope"},
                         json={"query": "{ health { status } }"})
    deep = "{ customer(number: \"1\") { " + "orders(first: 1) { edges { node { customer { " * 8 + "name" + \
           " } } } }" * 8 + " } }"
    await gw.client.post("/graphql", headers={"x-request-id": "audit-depth"}, json={"query": deep})
    await gw.client.post("/graphql", headers={"x-request-id": "audit-pii", "authorization":
                                              f"Bearer {gw.jwt('support')}"},
                         json={"query": '{ customer(number: "100001") { name email } }'})
    unauthenticated = await _by_request(gw, "audit-401")
    assert (unauthenticated["outcome"], unauthenticated["httpStatus"], unauthenticated["codes"]) == (
        "denied", 401, ["UNAUTHENTICATED"])
    assert unauthenticated["subject"] == "anonymous"
    assert (await _by_request(gw, "audit-depth"))["codes"] == ["DEPTH_LIMIT"]
    partial = await _by_request(gw, "audit-pii")
    assert partial["outcome"] == "denied" and partial["codes"] == ["FORBIDDEN"]


async def test_partner_requests_carry_partner_and_document(gw: Harness, world: World) -> None:
    token = await gw.partner_token("V00003")
    query = "{ partners { code } }"
    doc = await gw.trust(query)
    r = await gw.client.post("/graphql", json={"documentId": doc}, headers={
        **gw.bearer(token), "x-request-id": "audit-partner"})
    assert r.status_code == 200
    event = await _by_request(gw, "audit-partner")
    assert event["partner"] == "V00003" and event["document"] == doc and event["principalKind"] == "partner"
    assert [e["requestId"] for e in await _events(gw, partner="V00003")] == ["audit-partner"]


async def test_audit_events_need_audit_read(gw: Harness) -> None:
    body = await gw.query("{ auditEvents(first: 1) { edges { cursor } } }", token=gw.jwt("sales"))
    assert body["data"]["auditEvents"] is None and body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_variables_are_never_stored_raw(gw: Harness) -> None:
    secret_value = "needle-7f3a9c"
    await gw.client.post("/graphql", json={"query": "query($n: String!) { customer(number: $n) { name } }",
                                           "variables": {"n": secret_value}})
    engine = gw.app.state.audit.sink.engine
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT record FROM audit_events"))).all()
    assert rows and not any(secret_value in r.record for r in rows)


def _record(n: int) -> AuditRecord:
    return AuditRecord(id=f"id{n}", time=f"2026-11-25T00:00:{n:02d}.000000+00:00", request_id=f"r{n}",
                       client_ip="127.0.0.1", subject="s", principal_kind="user", token_id=None, partner_id=None,
                       operation_type="query", operation_name="Q", document=None)


async def _chain(url: str, count: int = 20) -> AsyncEngine:
    engine = create_async_engine(url)
    await upgrade(engine)
    sink = SqlAuditSink(engine, window_ms=1)
    await sink.start()
    await asyncio.gather(*(sink.write(_record(n)) for n in range(count)))
    await sink.aclose()
    return engine


async def _tamper_checks(engine: AsyncEngine) -> None:
    assert (await verify(engine)).ok
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE audit_events SET record = REPLACE(record, :a, :b) WHERE seq = 5"),
                           {"a": '"subject":"s"', "b": '"subject":"x"'})
    result = await verify(engine)
    assert [(p.seq, p.kind) for p in result.problems] == [(5, "changed")]
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit_events WHERE seq = 5"))
    assert [(p.seq, p.kind) for p in (await verify(engine)).problems] == [(6, "deleted")]
    async with engine.begin() as conn:  # move 9 and 10 apart: the chain no longer runs through them in order
        await conn.execute(text("UPDATE audit_events SET seq = -9 WHERE seq = 9"))
        await conn.execute(text("UPDATE audit_events SET seq = 9 WHERE seq = 10"))
        await conn.execute(text("UPDATE audit_events SET seq = 10 WHERE seq = -9"))
    kinds = {(p.seq, p.kind) for p in (await verify(engine)).problems}
    assert (9, "broken") in kinds and (10, "reordered") in kinds


async def test_tampering_is_found_on_sqlite(tmp_path: Path) -> None:
    engine = await _chain(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")
    try:
        await _tamper_checks(engine)
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_tampering_is_found_on_postgresql(postgres_url: str) -> None:
    engine = await _chain(postgres_url)
    try:
        await _tamper_checks(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def fragile(world: World, erp_sqlite_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db") as gw:
        yield gw


async def test_fail_closed_when_the_audit_store_is_down(fragile: Harness) -> None:
    engine = fragile.app.state.audit.sink.engine
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    r = await fragile.client.post("/graphql", json={"query": "{ warehouses { code } }"})
    assert r.status_code == 503 and r.json()["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))
    assert (await fragile.client.post("/graphql", json={"query": "{ warehouses { code } }"})).status_code == 200
    assert (await verify(engine)).ok


async def test_spool_keeps_records_while_the_store_is_down(world: World, erp_sqlite_url: str,
                                                           tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db",
                               audit={"on_failure": "spool", "spool_path": str(spool)}) as gw:
        engine = gw.app.state.audit.sink.engine
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
        ids = [f"spooled-{i}" for i in range(5)]
        for request_id in ids:
            r = await gw.client.post("/graphql", json={"query": "{ warehouses { code } }"},
                                     headers={"x-request-id": request_id})
            assert r.status_code == 200
        assert spool.read_text().count("\n") == 5
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))
        await gw.client.post("/graphql", json={"query": "{ warehouses { code } }"})  # triggers the replay
        async with engine.connect() as conn:
            stored = {r.request_id for r in await conn.execute(text("SELECT request_id FROM audit_events"))}
        assert set(ids) <= stored and spool.read_text() == ""
        assert (await verify(engine)).ok
    assert metadata.tables["audit_events"] is not None
