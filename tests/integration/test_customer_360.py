"""The customer-360 query returns clean, merged data that matches the seeded systems row for row."""

from __future__ import annotations

import gc
from datetime import date, datetime
from decimal import Decimal

from demo.world import World
from sources.mapping import title_text
from tests.integration.expected import ORDER_STATUS, cents, linked_customer, orders_of, stock_by_item
from tests.integration.gateway_harness import Harness

CUSTOMER_360 = """
query C360($id: ID!) {
  customer(id: $id) {
    name email creditLimit { amount currency }
    orders(first: 10) { edges { node { number status placedAt total { amount }
      lines { quantity product { name stock { warehouse { code } available } } } } } }
    interactions(first: 5) { edges { node { kind at summary } } }
  }
}
"""


def global_id(type_name: str, key: str) -> str:
    import base64

    return base64.b64encode(f"{type_name}:{key}".encode()).decode()


async def test_customer_360_matches_the_seeded_rows(gw: Harness, world: World) -> None:
    c = linked_customer(world, min_orders=11, min_interactions=5)
    body = await gw.query(CUSTOMER_360, {"id": global_id("Customer", c.erp_number)})
    assert "errors" not in body, body
    got = body["data"]["customer"]

    assert got["name"] == c.name
    assert got["email"] == c.email.lower() and got["email"] != c.email  # cleaned, and there was something to clean
    assert Decimal(got["creditLimit"]["amount"]) == cents(c.credit_limit_cents)
    assert got["creditLimit"]["currency"] == c.currency

    items = {i.number: i for i in world.items}
    stock = stock_by_item(world)
    expected_orders = orders_of(world, c.erp_number)[:10]
    got_orders = [e["node"] for e in got["orders"]["edges"]]
    assert [o["number"] for o in got_orders] == [str(o.number) for o in expected_orders]
    for g, o in zip(got_orders, expected_orders, strict=True):
        assert g["status"] == ORDER_STATUS[o.status]
        assert date.fromisoformat(g["placedAt"]) == o.placed
        assert Decimal(g["total"]["amount"]) == cents(o.total_cents)
        assert [line["quantity"] for line in g["lines"]] == [line.quantity for line in o.lines]
        for gl, ol in zip(g["lines"], o.lines, strict=True):
            assert gl["product"]["name"] == title_text(items[ol.item].description)
            assert gl["product"]["stock"] == [{"warehouse": {"code": s.warehouse}, "available": s.on_hand - s.allocated}
                                              for s in stock[ol.item]]

    expected_interactions = world.interactions[c.crm_id][:5]
    got_interactions = [e["node"] for e in got["interactions"]["edges"]]
    assert [(i["kind"], datetime.fromisoformat(i["at"]), i["summary"]) for i in got_interactions] == [
        (i.kind.upper(), i.occurred_at, i.subject) for i in expected_interactions]


async def test_customer_360_upstream_calls_do_not_grow_with_rows(gw: Harness, world: World) -> None:
    busy = linked_customer(world, min_orders=11, min_interactions=5)
    quiet = linked_customer(world, min_orders=1, max_orders=6)
    counts = []
    for c in (busy, quiet):
        gw.reset_counts()
        body = await gw.query(CUSTOMER_360, {"id": global_id("Customer", c.erp_number)})
        assert "errors" not in body, body
        calls = body["extensions"]["upstreamCalls"]
        counts.append((len(gw.sql), dict(gw.upstream["crm"].paths), len(calls)))
    # One statement each for customer, orders, lines, items, stock, warehouses; one CRM batch each for
    # the customer and its interactions: the same for 10 orders shown as for a handful.
    assert counts[0] == counts[1]
    assert counts[0][0] == 6
    assert counts[0][1] == {"/api/v1/customers": 1, "/api/v1/interactions": 1}
    assert counts[0][2] == 8


async def test_customer_360_reads_what_hangs_off_one_key_in_one_wave(gw: Harness, world: World) -> None:
    """Look-ahead: the orders start with the customer lookup; the lines' items, their stock and the
    warehouses start with the lines, as soon as the orders are known: three waves in all, not five."""
    c = linked_customer(world, min_orders=11, min_interactions=5)
    body = await gw.query(CUSTOMER_360, {"id": global_id("Customer", c.erp_number)})
    assert "errors" not in body, body
    calls = {(x["source"], x["operation"]): x for x in body["extensions"]["upstreamCalls"]}
    assert len(calls) == 8  # each operation once

    def start(operation: str) -> float:
        return float(calls[("erp", operation)]["startMs"])

    def end(operation: str) -> float:
        return start(operation) + float(calls[("erp", operation)]["ms"])

    assert start("orders_of_customers") < end("customers")
    for operation in ("items_of_orders", "stock_of_orders", "warehouses"):
        assert start(operation) < end("lines_of_orders"), operation
    assert start("lines_of_orders") >= end("orders_of_customers")  # lines need the order numbers
    assert ("erp", "items") not in calls and ("erp", "stock_of_items") not in calls


async def test_an_answered_request_is_freed_without_the_cycle_collector(gw: Harness, world: World) -> None:
    """Served gateways collect cyclic garbage rarely (gateway.app.tune_gc): a request must not need it.

    Everything a request read hangs off its context and loaders; a reference cycle holding them would
    keep it all until the next full collection, which then walks it all.
    """
    from resolvers.loaders import Loaders

    c = linked_customer(world, min_orders=11, min_interactions=5)
    await gw.query(CUSTOMER_360, {"id": global_id("Customer", c.erp_number)})  # warm: schema and plans built
    gc.collect()
    gc.disable()
    try:
        body = await gw.query(CUSTOMER_360, {"id": global_id("Customer", c.erp_number)})
        alive = [o for o in gc.get_objects() if type(o) is Loaders]
    finally:
        gc.enable()
    assert "errors" not in body, body
    assert alive == []
