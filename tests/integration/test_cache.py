"""The source cache: singleflight, stale answers marked, invalidation by signed notices, Redis sharing,
and no leaks between principals."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from aiocache import RedisCache, SimpleMemoryCache
from aiocache.base import BaseCache
from aiocache.serializers import NullSerializer

from demo.secrets import DemoSecrets
from demo.world import World
from gateway.hooks import sign
from sources.cache import CachePolicy, SourceCache
from tests.integration.expected import linked_customer
from tests.integration.gateway_harness import Harness, running_gateway
from tests.integration.test_customer_360 import CUSTOMER_360

HOOK_SECRET = "h" * 40
EMAIL = "query($n: String!) { customer(number: $n) { email } }"
CACHE_ALL = {"policies": {"crm.interactions_of": {"ttl_s": 60}}, "webhook_secrets": {"crm": HOOK_SECRET}}


class Clock:
    """A clock the test moves: cache ages without sleeping."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def cached(world: World, erp_sqlite_url: str, tmp_path: Path) -> AsyncIterator[tuple[Harness, Clock]]:
    clock = Clock()
    policies = {"crm.customers": {"ttl_s": 10, "stale_while_revalidate_s": 0, "stale_if_error_s": 100}}
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db", clock=clock,
                               cache={**CACHE_ALL, "policies": {**CACHE_ALL["policies"], **policies}}) as gw:
        gw.reset_counts()
        yield gw, clock


def _id(number: str) -> str:
    return base64.b64encode(f"Customer:{number}".encode()).decode()


async def test_concurrent_identical_queries_make_one_call_per_batch(cached: tuple[Harness, Clock],
                                                                    world: World) -> None:
    gw, _ = cached
    c = linked_customer(world, min_orders=11, min_interactions=5)
    bodies = await asyncio.gather(*(gw.query(CUSTOMER_360, {"id": _id(c.erp_number)}) for _ in range(100)))
    assert all("errors" not in b for b in bodies)
    assert all(b["data"] == bodies[0]["data"] for b in bodies)
    # orders, lines, items, stock, warehouses: one statement each for all 100 requests (the customer row
    # is already cached: building the crosswalk read it).
    assert len(gw.sql) == len(set(gw.sql)) == 5, gw.sql
    assert dict(gw.upstream["crm"].paths) == {"/api/v1/customers": 1, "/api/v1/interactions": 1}
    again = await gw.query(CUSTOMER_360, {"id": _id(c.erp_number)})
    assert again["data"] == bodies[0]["data"] and len(gw.sql) == 5  # a warm cache calls nothing


async def test_outage_within_stale_if_error_serves_marked_stale_data(cached: tuple[Harness, Clock],
                                                                      world: World) -> None:
    gw, clock = cached
    c = linked_customer(world, min_orders=1)
    query, n = EMAIL, {"n": c.erp_number}
    fresh = await gw.query(query, n)
    assert fresh["data"]["customer"]["email"] == c.email.lower() and "stale" not in fresh.get("extensions", {})
    gw.faults["crm"].outage = True
    try:
        clock.now += 50  # past the TTL (10 s), inside stale-if-error (100 s)
        stale = await gw.query(query, n)
        assert stale["data"]["customer"]["email"] == c.email.lower() and "errors" not in stale
        assert stale["extensions"]["stale"] == [{"source": "crm", "ageSeconds": 50.0}]
        clock.now += 100  # past both windows
        gone = await gw.query(query, n)
        assert gone["data"]["customer"]["email"] is None
        assert gone["errors"][0]["extensions"]["code"] == "SOURCE_UNAVAILABLE"
    finally:
        gw.faults["crm"].outage = False


async def _crm_patch(gw: Harness, crm_id: str, changes: dict[str, Any]) -> None:
    async with httpx.AsyncClient(transport=gw.upstream["crm"].inner, base_url="http://crm") as crm:
        token = (await crm.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": gw.secrets.crm_client_id,
            "client_secret": gw.secrets.crm_client_secret})).json()["access_token"]
        r = await crm.patch(f"/api/v1/customers/{crm_id}", json=changes, headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text


async def _notice(gw: Harness, body: bytes, *, secret: str = HOOK_SECRET, age: int = 0) -> httpx.Response:
    timestamp = str(int(time.time()) - age)
    return await gw.client.post("/hooks/crm", content=body, headers={
        "x-webhook-timestamp": timestamp, "x-webhook-signature": sign(secret, timestamp, body)})


async def test_signed_notice_invalidates_and_a_bad_one_changes_nothing(cached: tuple[Harness, Clock],
                                                                        world: World) -> None:
    gw, _ = cached
    c = linked_customer(world, min_orders=1, min_interactions=1)
    n = {"n": c.erp_number}
    assert (await gw.query(EMAIL, n))["data"]["customer"]["email"] == c.email.lower()
    await _crm_patch(gw, c.crm_id, {"email": "New.Address@Example.com"})
    assert (await gw.query(EMAIL, n))["data"]["customer"]["email"] == c.email.lower()  # still cached
    body = b'{"entity": "customer", "ids": ["%s"]}' % c.crm_id.encode()
    for bad in (await _notice(gw, body, secret="x" * 40), await _notice(gw, body, age=3600)):
        assert bad.status_code == 401
    assert (await gw.query(EMAIL, n))["data"]["customer"]["email"] == c.email.lower()
    assert (await gw.client.post("/hooks/crm", content=body)).status_code == 401  # unsigned
    good = await _notice(gw, body)
    assert good.status_code == 202 and "crm.customers" in good.json()["invalidated"]
    assert (await gw.query(EMAIL, n))["data"]["customer"]["email"] == "new.address@example.com"
    unknown = await _notice(gw, b'{"entity": "planet", "ids": []}')
    assert unknown.status_code == 422
    await _crm_patch(gw, c.crm_id, {"email": c.email})


@pytest.mark.redis
async def test_two_instances_share_entries_and_invalidations(world: World, erp_sqlite_url: str, tmp_path: Path,
                                                             redis_url: str) -> None:
    secrets = DemoSecrets.generate()
    cache = {**CACHE_ALL, "url": redis_url}
    c = linked_customer(world, min_orders=3, min_interactions=1)
    query = 'query($n: String!) { customer(number: $n) { name email orders(first: 3) { edges { cursor } } } }'
    n = {"n": c.erp_number}
    async with (running_gateway(world, erp_sqlite_url, tmp_path / "a.db", secrets=secrets, cache=cache) as a,
                running_gateway(world, erp_sqlite_url, tmp_path / "b.db", secrets=secrets, cache=cache) as b):
        a.reset_counts()
        b.reset_counts()
        first = await a.query(query, n)
        assert len(a.sql) >= 1 and a.upstream["crm"].total >= 1
        second = await b.query(query, n)
        assert second["data"] == first["data"]
        assert b.sql == [] and b.upstream["crm"].total == 0  # everything came from the shared cache
        assert "answerCache" in second["extensions"]  # down to the whole answer
        assert (await _notice(a, b'{"entity": "customer", "ids": []}')).status_code == 202
        third = await b.query(query, n)
        assert b.upstream["crm"].paths["/api/v1/customers"] == 1  # b saw a's invalidation
        assert "answerCache" not in third["extensions"]


async def test_no_leaks_between_a_partner_and_an_internal_user(world: World, erp_sqlite_url: str,
                                                               tmp_path: Path) -> None:
    supplier = world.purchase_orders[0].supplier
    item = next(o.item for o in world.offers if o.supplier == supplier
                and any(x.item == o.item and x.supplier != supplier for x in world.offers))
    query = """query($sku: String!) { product(sku: $sku) { offers { partner { code } }
        purchaseOrders { number partner { code } } }
      purchaseOrders(first: 100) { edges { node { number partner { code } } } } }"""
    all_offers = sorted(o.supplier for o in world.offers if o.item == item)
    all_pos = {po.id for po in world.purchase_orders}
    own_pos = {po.id for po in world.purchase_orders if po.supplier == supplier}
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db", cache=CACHE_ALL) as gw:
        token = await gw.partner_token(supplier)
        for round_ in range(3):
            for who in (("partner", "internal") if round_ % 2 else ("internal", "partner")):
                if who == "partner":
                    body = await gw.partner_query(query, {"sku": item}, token=token)
                    data = body["data"]
                    assert [o["partner"]["code"] for o in data["product"]["offers"]] == [supplier]
                    assert {p["partner"]["code"] for p in data["product"]["purchaseOrders"]} <= {supplier}
                    assert {e["node"]["number"] for e in data["purchaseOrders"]["edges"]} <= own_pos
                else:
                    data = (await gw.query(query, {"sku": item}))["data"]
                    assert sorted(o["partner"]["code"] for o in data["product"]["offers"]) == all_offers
                    assert len({e["node"]["number"] for e in data["purchaseOrders"]["edges"]}) == min(100, len(all_pos))


async def test_stale_while_revalidate_serves_old_and_refreshes_behind(world: World, erp_sqlite_url: str,
                                                                      tmp_path: Path) -> None:
    clock = Clock()
    policies = {"crm.customers": {"ttl_s": 10, "stale_while_revalidate_s": 60}}
    c = linked_customer(world, min_orders=1)
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db", clock=clock,
                               cache={"policies": policies}) as gw:
        await gw.query(EMAIL, {"n": c.erp_number})
        gw.reset_counts()
        clock.now += 30
        stale = await gw.query(EMAIL, {"n": c.erp_number})
        assert stale["data"]["customer"]["email"] == c.email.lower()
        assert stale["extensions"]["stale"] == [{"source": "crm", "ageSeconds": 30.0}]
        await gw.app.state.services.cache.drain()  # the refresh the stale answer started
        assert gw.upstream["crm"].paths["/api/v1/customers"] == 1
        fresh = await gw.query(EMAIL, {"n": c.erp_number})
        assert "stale" not in fresh.get("extensions", {}) and gw.upstream["crm"].paths["/api/v1/customers"] == 1


async def test_failures_are_not_cached(cached: tuple[Harness, Clock], world: World) -> None:
    gw, _ = cached
    c = linked_customer(world, min_orders=2, min_interactions=2)
    gw.faults["crm"].outage = True
    try:
        failed = await gw.query(EMAIL, {"n": c.erp_number})
        assert failed["errors"][0]["extensions"]["code"] == "SOURCE_UNAVAILABLE"
    finally:
        gw.faults["crm"].outage = False
    healed = await gw.query(EMAIL, {"n": c.erp_number})
    assert healed["data"]["customer"]["email"] == c.email.lower() and "errors" not in healed


# --- a read under way during an invalidation ----------------------------------------------------------

class PausedSource:
    """A source whose value the test changes, and whose next fetch the test can hold mid-call."""

    def __init__(self) -> None:
        self.value = "old"
        self.calls = 0
        self.hold: asyncio.Event | None = None
        self.fetching = asyncio.Event()

    async def fetch(self, keys: list[str]) -> dict[str, Any]:
        self.calls += 1
        value = self.value  # what the upstream answered, before the pause that delays it reaching us
        if self.hold is not None:
            hold, self.hold = self.hold, None
            self.fetching.set()
            await hold.wait()
        return {k: value for k in keys}


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend_url(request: pytest.FixtureRequest) -> str | None:
    """None for the memory backend, else the Redis server's (flushed) database."""
    return request.getfixturevalue("redis_url") if request.param == "redis" else None


@pytest.fixture
async def source_cache(backend_url: str | None) -> AsyncIterator[SourceCache]:
    backend: BaseCache
    if backend_url is not None:
        url = urlparse(backend_url)
        backend = RedisCache(serializer=NullSerializer(), endpoint=url.hostname, port=url.port,
                             db=int(url.path.lstrip("/")))
    else:
        backend = SimpleMemoryCache(serializer=NullSerializer())
    cache = SourceCache(backend, {"crm.customers": CachePolicy(ttl_s=60)})
    try:
        yield cache
    finally:
        await cache.aclose()


@pytest.mark.parametrize("keys", [["c1"], None], ids=["per_key", "whole_operation"])
async def test_a_read_under_way_during_an_invalidation_does_not_store_its_older_value(
        source_cache: SourceCache, keys: list[str] | None) -> None:
    source = PausedSource()
    source.hold = hold = asyncio.Event()
    first = asyncio.create_task(source_cache.many("crm", "customers", ["c1"], None, source.fetch))
    await source.fetching.wait()
    source.value = "new"
    await source_cache.invalidate("crm", "customers", keys)
    hold.set()
    assert await first == {"c1": "old"}  # it began before the invalidation: its answer may be the old one
    assert await source_cache.many("crm", "customers", ["c1"], None, source.fetch) == {"c1": "new"}
    assert source.calls == 2  # the next read asked the source again
    assert await source_cache.many("crm", "customers", ["c1"], None, source.fetch) == {"c1": "new"}
    assert source.calls == 2  # and what it fetched is cached


@pytest.mark.parametrize("keys", [["c1"], None], ids=["per_key", "whole_operation"])
async def test_a_read_begun_after_an_invalidation_does_not_wait_for_a_fetch_begun_before(
        source_cache: SourceCache, keys: list[str] | None) -> None:
    source = PausedSource()
    source.hold = hold = asyncio.Event()
    first = asyncio.create_task(source_cache.many("crm", "customers", ["c1"], None, source.fetch))
    await source.fetching.wait()
    source.value = "new"
    await source_cache.invalidate("crm", "customers", keys)
    second = await asyncio.wait_for(source_cache.many("crm", "customers", ["c1"], None, source.fetch), 5)
    assert second == {"c1": "new"} and source.calls == 2
    hold.set()
    assert await first == {"c1": "old"}
    assert await source_cache.many("crm", "customers", ["c1"], None, source.fetch) == {"c1": "new"}
    assert source.calls == 2


async def test_an_invalidation_of_one_key_does_not_stop_others_being_stored(source_cache: SourceCache) -> None:
    source = PausedSource()
    source.hold = hold = asyncio.Event()
    first = asyncio.create_task(source_cache.many("crm", "customers", ["c1", "c2"], None, source.fetch))
    await source.fetching.wait()
    await source_cache.invalidate("crm", "customers", ["c1"])
    hold.set()
    await first
    assert await source_cache.many("crm", "customers", ["c2"], None, source.fetch) == {"c2": "old"}
    assert source.calls == 1
