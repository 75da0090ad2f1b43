"""Order lists: filters, cursor pagination, and batched resolution of customers, lines and stock."""

from __future__ import annotations

from collections import Counter
from datetime import date

from demo.world import World
from tests.integration.expected import ORDER_STATUS
from tests.integration.gateway_harness import Harness

ORDER_LIST = """
query Orders($first: Int!, $after: String, $filter: OrderListFilter) {
  orders(first: $first, after: $after, filter: $filter) {
    pageInfo { hasNextPage endCursor }
    edges { cursor node { number status placedAt customer { name number }
      lines { quantity product { sku stock { warehouse { code } available } } } } }
  }
}
"""


def _operations(body: dict) -> Counter[tuple[str, str]]:
    return Counter((c["source"], c["operation"]) for c in body["extensions"]["upstreamCalls"])


async def test_fifty_orders_cost_the_same_calls_as_five(gw: Harness, world: World) -> None:
    per_size = {}
    for first in (5, 50):
        gw.reset_counts()
        body = await gw.query(ORDER_LIST, {"first": first})
        assert "errors" not in body, body
        assert len(body["data"]["orders"]["edges"]) == first
        ops = _operations(body)
        # Every upstream operation runs once, whatever the number of rows.
        assert set(ops.values()) == {1}, ops
        per_size[first] = (ops, len(gw.sql), gw.upstream["crm"].total)
    (ops5, sql5, _), (ops50, sql50, crm50) = per_size[5], per_size[50]
    assert sql50 <= 6 and crm50 == 1
    assert sql5 <= sql50 <= sql5 + 1  # +1 only if the bigger page holds a customer the CRM cannot name
    assert set(ops5) <= set(ops50)


async def test_orders_are_newest_first_and_pages_do_not_overlap(gw: Harness, world: World) -> None:
    expected = sorted(world.orders(), key=lambda o: (o.placed, o.number), reverse=True)[:45]
    seen: list[str] = []
    after = None
    for _ in range(3):
        body = await gw.query(ORDER_LIST, {"first": 15, "after": after})
        page = body["data"]["orders"]
        seen += [e["node"]["number"] for e in page["edges"]]
        assert page["pageInfo"]["hasNextPage"] is True
        after = page["pageInfo"]["endCursor"]
    assert seen == [str(o.number) for o in expected]


async def test_order_filters(gw: Harness, world: World) -> None:
    customer = world.customers[3]
    flt = {"statuses": ["INVOICED", "CANCELLED"], "placedFrom": "2024-06-01", "placedTo": "2025-06-30",
           "customer": __import__("base64").b64encode(f"Customer:{customer.erp_number}".encode()).decode()}
    body = await gw.query(ORDER_LIST, {"first": 100, "filter": flt})
    assert "errors" not in body, body
    expected = sorted((o for o in world.orders() if o.customer == customer.erp_number and o.status in "IC"
                       and date(2024, 6, 1) <= o.placed <= date(2025, 6, 30)),
                      key=lambda o: (o.placed, o.number), reverse=True)
    got = [e["node"] for e in body["data"]["orders"]["edges"]]
    assert [g["number"] for g in got] == [str(o.number) for o in expected]
    assert {g["status"] for g in got} <= {ORDER_STATUS["I"], ORDER_STATUS["C"]}
    assert all(g["customer"]["number"] == customer.erp_number for g in got)


async def test_page_size_above_the_cap_is_an_error_not_a_truncation(gw: Harness) -> None:
    body = await gw.query(ORDER_LIST, {"first": 1000})
    assert body.get("data") is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert gw.sql == []


async def test_a_forged_cursor_is_bad_input(gw: Harness) -> None:
    body = await gw.query(ORDER_LIST, {"first": 5, "after": "not-a-cursor"})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert gw.sql == []
