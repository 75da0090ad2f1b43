"""The answer cache: whole answers reused per principal, as fresh as their sources, dropped on invalidation,
and still authenticated and audited."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from demo.world import World
from tests.integration.expected import linked_customer
from tests.integration.gateway_harness import Harness, running_gateway
from tests.integration.test_cache import CACHE_ALL, Clock
from tests.integration.test_customer_360 import CUSTOMER_360
from tests.integration.test_writes import UPDATE

NAME = "query($n: String!) { customer(number: $n) { name email } }"


@pytest.fixture
async def cached(world: World, erp_sqlite_url: str, tmp_path: Path) -> AsyncIterator[tuple[Harness, Clock]]:
    clock = Clock()
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db", clock=clock, cache=CACHE_ALL) as gw:
        gw.reset_counts()
        yield gw, clock


def _id(number: str) -> str:
    return base64.b64encode(f"Customer:{number}".encode()).decode()


def upstream(gw: Harness) -> int:
    return len(gw.sql) + sum(t.total for t in gw.upstream.values())


async def test_the_same_query_is_answered_without_executing(cached: tuple[Harness, Clock], world: World) -> None:
    gw, clock = cached
    c = linked_customer(world, min_orders=11, min_interactions=5)
    first = await gw.query(CUSTOMER_360, {"id": _id(c.erp_number)})
    assert "errors" not in first and "answerCache" not in first["extensions"]
    gw.reset_counts()
    clock.now += 1  # within the freshness of everything in it (stock: 2 s)
    again = await gw.query(CUSTOMER_360, {"id": _id(c.erp_number)})
    assert again["data"] == first["data"]
    assert again["extensions"] == {"answerCache": {"ageSeconds": 1.0}}
    assert upstream(gw) == 0
    other = await gw.query(CUSTOMER_360, {"id": _id(linked_customer(world, min_orders=1, max_orders=6).erp_number)})
    assert "answerCache" not in other["extensions"]  # other variables: another answer


async def test_answers_are_kept_per_principal(cached: tuple[Harness, Clock], world: World) -> None:
    gw, _ = cached
    c = linked_customer(world, min_orders=1)
    admin = await gw.query(NAME, {"n": c.erp_number}, token=gw.jwt("admin"))
    assert admin["data"]["customer"]["email"] == c.email.lower()
    # Without customers:pii the e-mail is refused, even though the admin's answer is in the cache.
    support = await gw.query(NAME, {"n": c.erp_number}, token=gw.jwt("support"))
    assert support["data"]["customer"]["email"] is None and "answerCache" not in support.get("extensions", {})
    assert support["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # Another user with the very same roles gets an answer of their own, not the first user's.
    colleague = await gw.query(NAME, {"n": c.erp_number}, token=gw.jwt("admin", subject="someone-else@example.com"))
    assert "answerCache" not in colleague["extensions"]
    assert "answerCache" in (await gw.query(NAME, {"n": c.erp_number}, token=gw.jwt("admin")))["extensions"]


async def test_partners_get_only_their_own_answers(cached: tuple[Harness, Clock], world: World) -> None:
    gw, _ = cached
    query = "query($s: String!) { product(sku: $s) { sku offers { leadTimeDays } } }"
    item = next(i for i in world.items if len({o.supplier for o in world.offers if o.item == i.number}) >= 2)
    first, second = sorted({o.supplier for o in world.offers if o.item == item.number})[:2]
    mine = await gw.partner_query(query, {"s": item.number}, token=await gw.partner_token(first))
    theirs = await gw.partner_query(query, {"s": item.number}, token=await gw.partner_token(second))
    assert "answerCache" not in theirs.get("extensions", {})
    assert len(mine["data"]["product"]["offers"]) == sum(
        1 for o in world.offers if o.item == item.number and o.supplier == first)


async def test_an_answer_lives_as_long_as_its_freshest_source_allows(cached: tuple[Harness, Clock],
                                                                     world: World) -> None:
    gw, clock = cached
    c = linked_customer(world, min_orders=11, min_interactions=5)
    await gw.query(CUSTOMER_360, {"id": _id(c.erp_number)})
    clock.now += 1.5  # stock is fresh for 2 s by default
    assert "answerCache" in (await gw.query(CUSTOMER_360, {"id": _id(c.erp_number)}))["extensions"]
    clock.now += 1
    gw.reset_counts()
    expired = await gw.query(CUSTOMER_360, {"id": _id(c.erp_number)})
    assert "answerCache" not in expired["extensions"] and upstream(gw) > 0


async def test_a_write_through_the_gateway_drops_the_answers_built_on_it(cached: tuple[Harness, Clock],
                                                                         world: World) -> None:
    gw, _ = cached
    c = linked_customer(world, min_orders=1)
    await gw.query(NAME, {"n": c.erp_number})
    assert "answerCache" in (await gw.query(NAME, {"n": c.erp_number}))["extensions"]
    changed = await gw.query(UPDATE, {"input": {"customer": _id(c.erp_number), "email": "New@Example.com"}})
    assert "errors" not in changed, changed
    after = await gw.query(NAME, {"n": c.erp_number})
    assert after["data"]["customer"]["email"] == "new@example.com" and "answerCache" not in after["extensions"]


@pytest.mark.parametrize("query", [
    # CRM interactions have no cache policy by default: nothing built from them is kept.
    'query($n: String!) { customer(number: $n) { interactions(first: 2) { edges { node { kind } } } } }',
    # The audit trail changes with every request.
    'query($n: String!) { customer(number: $n) { name } auditEvents(first: 1) { edges { cursor } } }',
])
async def test_answers_from_uncached_data_are_not_kept(world: World, erp_sqlite_url: str, tmp_path: Path,
                                                       query: str) -> None:
    c = linked_customer(world, min_orders=1, min_interactions=2)
    async with running_gateway(world, erp_sqlite_url, tmp_path / "g.db", cache={}) as gw:
        for _ in range(2):
            body = await gw.query(query, {"n": c.erp_number})
            assert "errors" not in body and "answerCache" not in body["extensions"], body


async def test_errors_are_not_kept(cached: tuple[Harness, Clock], world: World) -> None:
    gw, _ = cached
    c = linked_customer(world, min_orders=1)
    gw.faults["crm"].outage = True
    try:
        broken = await gw.query(NAME, {"n": c.erp_number})
        assert broken["errors"]
    finally:
        gw.faults["crm"].outage = False
    healed = await gw.query(NAME, {"n": c.erp_number})
    assert "errors" not in healed and healed["data"]["customer"]["email"] == c.email.lower()


async def test_answers_from_the_cache_are_audited(cached: tuple[Harness, Clock], world: World) -> None:
    gw, _ = cached
    c = linked_customer(world, min_orders=1)
    for _ in range(2):
        await gw.query(NAME, {"n": c.erp_number})
    events = await gw.query("{ auditEvents(first: 100) { edges { node { operationName fields piiFields "
                            "upstream { source } answeredFromCache } } } }")
    assert "errors" not in events, events
    mine = [e["node"] for e in events["data"]["auditEvents"]["edges"] if "Customer.email" in e["node"]["fields"]]
    assert sorted((e["answeredFromCache"], bool(e["upstream"])) for e in mine) == [(False, True), (True, False)]
    assert all(e["piiFields"] == ["Customer.email"] for e in mine)
