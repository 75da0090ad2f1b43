"""`Idempotency-Key` on mutations: a retried write runs once per key and caller, and its retries get the
first answer again, byte for byte (`Idempotent-Replayed: true`), even concurrently or after a restart."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from demo.secrets import DemoSecrets
from demo.world import World
from gateway.audit.log import document_hash
from gateway.db import upgrade
from gateway.idempotency import (
    IdempotencyStore,
    Lease,
    Replay,
    Reused,
    StoredAnswer,
    fingerprint_of,
    idempotency_keys,
    scope_of,
)
from gateway.settings import IdempotencySettings
from sources.sql import make_engine
from tests.integration.expected import linked_customer
from tests.integration.gateway_harness import Harness, running_gateway

UPDATE = """mutation($input: UpdateCustomerContactInput!) {
  updateCustomerContact(input: $input) { customer { email phone } } }"""
READ = "query($n: String!) { customer(number: $n) { email phone } }"


class CrmPatches(httpx.AsyncBaseTransport):
    """Stands between the gateway and the sample CRM: counts the PATCHes (writes) that reach it, and can
    hold them until the test lets them through."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.statuses: list[int] = []  # of every PATCH, in order
        self.hold: asyncio.Event | None = None
        self.arrived = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            self.arrived.set()
            if self.hold is not None:
                await self.hold.wait()
        response = await self.inner.handle_async_request(request)
        if request.method == "PATCH":
            self.statuses.append(response.status_code)
        return response

    @property
    def patches(self) -> int:
        return len(self.statuses)


def watched_crm(gw: Harness, monkeypatch: pytest.MonkeyPatch) -> CrmPatches:
    crm = CrmPatches(gw.upstream["crm"].inner)
    monkeypatch.setattr(gw.upstream["crm"], "inner", crm)
    return crm


@pytest.fixture
async def keyed(world: World, erp_sqlite_url: str, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Harness, CrmPatches]]:
    """A gateway of its own (its CRM's records change, its database holds the keys) and its CRM's writes."""
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db") as gw:
        yield gw, watched_crm(gw, monkeypatch)


def change(world: World, email: str) -> dict[str, Any]:
    number = linked_customer(world, min_orders=1).erp_number
    return {"input": {"customer": base64.b64encode(f"Customer:{number}".encode()).decode(), "email": email}}


async def send(gw: Harness, variables: dict[str, Any], *, key: str = "checkout-1", token: str | None = None,
               query: str = UPDATE, request_id: str | None = None) -> httpx.Response:
    headers = {**gw.bearer(token or gw.jwt("sales")), "idempotency-key": key}
    if request_id is not None:
        headers["x-request-id"] = request_id
    return await gw.client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)


def replayed(response: httpx.Response) -> bool:
    return response.headers.get("idempotent-replayed") == "true"


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


async def test_concurrent_retries_run_the_mutation_once_and_all_get_the_same_bytes(
        keyed: tuple[Harness, CrmPatches], world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    gw, crm = keyed
    store = gw.app.state.graphql.idempotency
    claim, arrived = store.claim, 0
    crm.hold = asyncio.Event()

    async def counted_claim(scope: str, fingerprint: str) -> Any:
        # The CRM write is held until all five have asked for the key: the other four find it running.
        nonlocal arrived
        arrived += 1
        if arrived == 5:
            crm.hold.set()
        return await claim(scope, fingerprint)

    monkeypatch.setattr(store, "claim", counted_claim)
    answers = await asyncio.gather(*(send(gw, change(world, "five@example.com")) for _ in range(5)))
    assert crm.patches == 1
    assert [a.status_code for a in answers] == [200] * 5
    assert len({a.content for a in answers}) == 1
    assert answers[0].json()["data"]["updateCustomerContact"]["customer"]["email"] == "five@example.com"
    assert sorted(replayed(a) for a in answers) == [False, True, True, True, True]


async def test_a_retry_after_a_restart_is_replayed_from_the_gateway_database(
        world: World, erp_sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = DemoSecrets.generate()
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db", secrets=secrets) as gw:
        crm = watched_crm(gw, monkeypatch)
        first = await send(gw, change(world, "restart@example.com"))
        assert crm.patches == 1 and not replayed(first)
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db", secrets=secrets) as gw:
        crm = watched_crm(gw, monkeypatch)
        again = await send(gw, change(world, "restart@example.com"))
        assert crm.patches == 0 and replayed(again)
        assert again.content == first.content and again.status_code == first.status_code
        assert again.headers["content-type"] == first.headers["content-type"]
        assert again.headers["x-request-id"] != first.headers["x-request-id"]  # the retry's own


async def test_the_same_key_with_other_variables_is_refused_and_nothing_runs(
        keyed: tuple[Harness, CrmPatches], world: World) -> None:
    gw, crm = keyed
    assert (await send(gw, change(world, "first@example.com"))).status_code == 200
    other = await send(gw, change(world, "second@example.com"))
    assert other.status_code == 422 and code_of(other) == "IDEMPOTENCY_KEY_REUSED"
    assert set(other.json()) == {"errors"} and "Idempotency-Key" in other.json()["errors"][0]["message"]
    assert crm.patches == 1


async def test_keys_are_scoped_per_principal(keyed: tuple[Harness, CrmPatches], world: World) -> None:
    gw, crm = keyed
    alice, bob = gw.jwt("sales", subject="alice@example.com"), gw.jwt("sales", subject="bob@example.com")
    answers = [await send(gw, change(world, "shared@example.com"), key="same-key", token=token)
               for token in (alice, bob)]
    assert crm.patches == 2 and not any(replayed(a) for a in answers)
    assert replayed(await send(gw, change(world, "shared@example.com"), key="same-key", token=bob))
    assert crm.patches == 2


async def test_a_query_ignores_the_header(keyed: tuple[Harness, CrmPatches], world: World) -> None:
    gw, crm = keyed
    number = linked_customer(world, min_orders=1).erp_number
    gw.reset_counts()
    answers = [await send(gw, {"n": number}, key="k-query", query=READ) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200] and not any(replayed(a) for a in answers)
    assert gw.upstream["crm"].paths["/api/v1/customers"] == 2  # executed both times
    done = await send(gw, change(world, "after-query@example.com"), key="k-query")  # the key is still unused
    assert done.status_code == 200 and "errors" not in done.json() and crm.patches == 1


async def test_an_expired_key_runs_again(world: World, erp_sqlite_url: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_IDEMPOTENCY__TTL_S", "30")  # expired before the next purge is due
    later = 0.0
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db", clock=lambda: time.time() + later) as gw:
        crm = watched_crm(gw, monkeypatch)
        await send(gw, change(world, "expiring@example.com"))
        assert replayed(await send(gw, change(world, "expiring@example.com")))
        later = 31
        again = await send(gw, change(world, "expiring@example.com"))
        assert not replayed(again) and "errors" not in again.json()
        assert crm.patches == 2


async def test_expired_keys_are_purged(world: World, erp_sqlite_url: str, tmp_path: Path) -> None:
    later = 0.0
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db", clock=lambda: time.time() + later) as gw:
        await send(gw, change(world, "purged@example.com"), key="k-old")
        later = 86_400 + 1  # idempotency.ttl_s, the default, has passed
        await send(gw, change(world, "purged@example.com"), key="k-new")
        async with gw.app.state.graphql.idempotency.engine.connect() as conn:
            rows = (await conn.execute(select(idempotency_keys.c.created_ms))).all()
        assert len(rows) == 1  # k-new's; k-old's row went with the purge that k-new's claim ran


async def test_a_transient_failure_is_not_kept_and_the_retry_runs(keyed: tuple[Harness, CrmPatches],
                                                                  world: World) -> None:
    gw, crm = keyed
    gw.faults["crm"].outage = True
    try:
        failed = await send(gw, change(world, "outage@example.com"))
    finally:
        gw.faults["crm"].outage = False
    assert code_of(failed) == "SOURCE_UNAVAILABLE"
    retry = await send(gw, change(world, "outage@example.com"))
    assert not replayed(retry) and "errors" not in retry.json()
    assert crm.statuses[-1] == 200
    assert replayed(await send(gw, change(world, "outage@example.com")))  # the success is kept


async def _row_for(gw: Harness, token: str, key: str, variables: dict[str, Any], **values: Any) -> str:
    """A key row as another gateway process would have left it; its scope."""
    principal = await gw.app.state.graphql.authenticator.authenticate("Bearer " + token)
    scope = scope_of(principal, key)
    now = int(time.time() * 1000)
    engine = gw.app.state.graphql.idempotency.engine
    async with engine.begin() as conn:
        await conn.execute(insert(idempotency_keys).values(
            scope=scope, fingerprint=fingerprint_of(document_hash(UPDATE), None, variables), state="running",
            created_ms=now - 60_000, expires_ms=now + 86_400_000, **values))
    return scope


async def test_a_running_key_whose_lease_ran_out_is_taken_over(keyed: tuple[Harness, CrmPatches],
                                                               world: World) -> None:
    gw, crm = keyed
    token, variables = gw.jwt("sales"), change(world, "taken-over@example.com")
    now = int(time.time() * 1000)
    scope = await _row_for(gw, token, "k-dead", variables, owner="dead", lease_until_ms=now - 1_000)
    done = await send(gw, variables, key="k-dead", token=token)
    assert done.status_code == 200 and not replayed(done) and "errors" not in done.json()
    assert crm.patches == 1
    async with gw.app.state.graphql.idempotency.engine.connect() as conn:
        row = (await conn.execute(select(idempotency_keys).where(idempotency_keys.c.scope == scope))).one()
    assert row.state == "done" and row.owner != "dead" and bytes(row.body) == done.content
    assert replayed(await send(gw, variables, key="k-dead", token=token))


async def test_a_key_running_elsewhere_past_wait_s_is_409(
        world: World, erp_sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_IDEMPOTENCY__WAIT_S", "0.2")
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db") as gw:
        crm = watched_crm(gw, monkeypatch)
        token, variables = gw.jwt("sales"), change(world, "elsewhere@example.com")
        now = int(time.time() * 1000)
        await _row_for(gw, token, "k-busy", variables, owner="alive", lease_until_ms=now + 60_000)
        busy = await send(gw, variables, key="k-busy", token=token)
        assert busy.status_code == 409 and code_of(busy) == "IDEMPOTENCY_KEY_IN_USE"
        assert 1 <= int(busy.headers["retry-after"]) <= 60
        assert crm.patches == 0


async def test_a_waiter_past_wait_s_is_409_and_the_answer_comes_later(
        world: World, erp_sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_IDEMPOTENCY__WAIT_S", "0.2")
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db") as gw:
        crm = watched_crm(gw, monkeypatch)
        crm.hold = asyncio.Event()
        variables = change(world, "slow@example.com")
        first = asyncio.create_task(send(gw, variables))
        await crm.arrived.wait()  # the first request holds the key, its write held at the CRM
        waiter = await send(gw, variables)
        assert waiter.status_code == 409 and code_of(waiter) == "IDEMPOTENCY_KEY_IN_USE"
        assert int(waiter.headers["retry-after"]) >= 1
        crm.hold.set()
        answered = await first
        later = await send(gw, variables)
        assert replayed(later) and later.content == answered.content and crm.patches == 1


async def test_a_replay_is_audited_as_the_mutation_without_upstream_calls(
        keyed: tuple[Harness, CrmPatches], world: World) -> None:
    gw, _ = keyed
    await send(gw, change(world, "audited@example.com"), request_id="idem-first")
    await send(gw, change(world, "audited@example.com"), request_id="idem-replay")
    body = await gw.query("""{ auditEvents(first: 20) { edges { node {
      requestId operationType outcome httpStatus fields upstream { source } } } } }""")
    events = {e["node"]["requestId"]: e["node"] for e in body["data"]["auditEvents"]["edges"]}
    first, replay = events["idem-first"], events["idem-replay"]
    assert replay["operationType"] == "mutation" and replay["outcome"] == "ok" and replay["httpStatus"] == 200
    assert replay["fields"] == first["fields"] and replay["upstream"] == [] and first["upstream"] != []


async def two_processes_share_keys(url: str) -> None:
    """Two stores on one database act as two gateway instances: no events between them, only the rows."""
    gateway_db = make_engine(url, pool_size=4)
    try:
        await upgrade(gateway_db)
        await _two_processes(gateway_db)
    finally:
        await gateway_db.dispose()


async def _two_processes(gateway_db: AsyncEngine) -> None:
    settings = IdempotencySettings(wait_s=10, lease_s=15)
    first, second = IdempotencyStore(gateway_db, settings), IdempotencyStore(gateway_db, settings)
    lease = await first.claim("s" * 64, "f" * 64)
    assert isinstance(lease, Lease)
    waiting = asyncio.create_task(second.claim("s" * 64, "f" * 64))
    assert isinstance(await second.claim("s" * 64, "g" * 64), Reused)
    answer = StoredAnswer(200, "application/json", (("content-type", "application/json"),), b'{"data":{}}')
    await lease.complete(answer)
    assert await waiting == Replay(answer)
    now = int(time.time() * 1000)
    async with gateway_db.begin() as conn:  # a process died while running "d..."
        await conn.execute(insert(idempotency_keys).values(
            scope="d" * 64, fingerprint="f" * 64, state="running", owner="dead", created_ms=now - 60_000,
            lease_until_ms=now - 1, expires_ms=now + 86_400_000))
    retries = [asyncio.create_task(second.claim("d" * 64, "f" * 64)) for _ in range(2)]
    finished, waiting_too = await asyncio.wait(retries, return_when=asyncio.FIRST_COMPLETED)
    taken = finished.pop().result()
    assert isinstance(taken, Lease) and not waiting_too.pop().done()  # one took it over, one waits for it
    await taken.complete(answer)
    assert [await r for r in retries].count(Replay(answer)) == 1


async def test_two_processes_share_keys_on_sqlite(tmp_path: Path) -> None:
    await two_processes_share_keys(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")


@pytest.mark.postgres
async def test_two_processes_share_keys_on_postgresql(postgres_url: str) -> None:
    await two_processes_share_keys(postgres_url)


@pytest.mark.mariadb
async def test_two_processes_share_keys_on_mariadb(mariadb_url: str) -> None:
    await two_processes_share_keys(mariadb_url)
