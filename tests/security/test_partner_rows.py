"""Partner tokens see only their own rows, also through node(id:) and nested paths."""

from __future__ import annotations

import base64

from demo.world import World
from tests.integration.gateway_harness import Harness


def gid(type_name: str, key: str) -> str:
    return base64.b64encode(f"{type_name}:{key}".encode()).decode()


def supplier_of(world: World) -> str:
    return world.purchase_orders[0].supplier


def supplied_items(world: World, supplier: str) -> tuple[str, str]:
    """(an item the supplier supplies, one it does not)."""
    offered = {o.item for o in world.offers if o.supplier == supplier}
    mine = next(i.number for i in world.items if i.main_vendor == supplier or i.number in offered)
    other = next(i.number for i in world.items if i.main_vendor != supplier and i.number not in offered)
    return mine, other


async def test_purchase_order_list_is_restricted_to_the_partner(gw: Harness, world: World) -> None:
    supplier = supplier_of(world)
    token = await gw.partner_token(supplier)
    body = await gw.partner_query(
        "{ purchaseOrders(first: 100) { edges { node { number partner { code } } } } }", token=token
    )
    got = {e["node"]["number"] for e in body["data"]["purchaseOrders"]["edges"]}
    assert got == {po.id for po in world.purchase_orders if po.supplier == supplier}
    other = next(po.supplier for po in world.purchase_orders if po.supplier != supplier)
    denied = await gw.partner_query(
        f'{{ purchaseOrders(first: 5, filter: {{partner: "{other}"}}) {{ edges {{ cursor }} }} }}', token=token
    )
    assert denied["data"]["purchaseOrders"] is None and denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_purchase_order_nodes_of_others_are_invisible(gw: Harness, world: World) -> None:
    supplier = supplier_of(world)
    token = await gw.partner_token(supplier)
    mine = next(po.id for po in world.purchase_orders if po.supplier == supplier)
    theirs = next(po.id for po in world.purchase_orders if po.supplier != supplier)
    body = await gw.partner_query(
        "query($ids: [ID!]!) { nodes(ids: $ids) { ... on PurchaseOrder { number } } }",
        {"ids": [gid("PurchaseOrder", mine), gid("PurchaseOrder", theirs)]},
        token=token,
    )
    assert body["data"]["nodes"] == [{"number": mine}, None]


async def test_offers_and_purchase_orders_under_a_product(gw: Harness, world: World) -> None:
    supplier = supplier_of(world)
    token = await gw.partner_token(supplier)
    item = next(
        o.item
        for o in world.offers
        if o.supplier == supplier and any(x.item == o.item and x.supplier != supplier for x in world.offers)
    )
    body = await gw.partner_query(
        f"""{{ product(sku: "{item}") {{ offers {{ partner {{ code }} }}
        purchaseOrders {{ partner {{ code }} }} }} }}""",
        token=token,
    )
    product = body["data"]["product"]
    assert [o["partner"]["code"] for o in product["offers"]] == [supplier]
    assert {po["partner"]["code"] for po in product["purchaseOrders"]} <= {supplier}
    internal = await gw.query(f'{{ product(sku: "{item}") {{ offers {{ partner {{ code }} }} }} }}')
    assert len(internal["data"]["product"]["offers"]) > 1  # the rule hid others' offers, not all


async def test_stock_only_for_items_the_partner_supplies(gw: Harness, world: World) -> None:
    supplier = supplier_of(world)
    token = await gw.partner_token(supplier)
    mine, other = supplied_items(world, supplier)
    query = "query($s: String!) { product(sku: $s) { sku stock { available } } }"
    allowed = await gw.partner_query(query, {"s": mine}, token=token)
    assert allowed["data"]["product"]["stock"] is not None and "errors" not in allowed
    denied = await gw.partner_query(query, {"s": other}, token=token)
    assert denied["data"]["product"] == {"sku": other, "stock": None}
    # Look-ahead waits for the rule: the refused stock was not even read.
    gw.reset_counts()
    await gw.partner_query(query, {"s": other}, token=token)
    assert not [s for s in gw.sql if "ITMBAL" in s], gw.sql
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    nested = await gw.partner_query(
        "{ products(first: 100) { edges { node { sku stock { available } } } } }", token=token
    )
    visible = {e["node"]["sku"] for e in nested["data"]["products"]["edges"] if e["node"]["stock"] is not None}
    assert mine in visible and other not in visible


async def test_carrier_sees_only_its_shipments(gw: Harness, world: World) -> None:
    mine = world.shipments[0]
    theirs = next(s for s in world.shipments if s.carrier != mine.carrier)
    token = await gw.partner_token(mine.carrier)
    query = "query($t: String!) { shipment(trackingNumber: $t) { trackingNumber } }"
    assert (await gw.partner_query(query, {"t": mine.tracking_number}, token=token))["data"]["shipment"] is not None
    assert (await gw.partner_query(query, {"t": theirs.tracking_number}, token=token))["data"]["shipment"] is None
    node = await gw.partner_query(
        "query($id: ID!) { node(id: $id) { id } }", {"id": gid("Shipment", theirs.tracking_number)}, token=token
    )
    assert node["data"]["node"] is None


async def test_partner_tokens_never_reach_customers_or_orders(gw: Harness, world: World) -> None:
    token = await gw.partner_token(supplier_of(world))
    body = await gw.partner_query(
        '{ customer(number: "100001") { name } orders(first: 1) { edges { cursor } } }', token=token
    )
    assert body["data"] == {"customer": None, "orders": None}
    assert {e["extensions"]["code"] for e in body["errors"]} == {"FORBIDDEN"}


async def test_partner_tokens_cannot_be_minted_with_internal_scopes(gw: Harness) -> None:
    import pytest

    with pytest.raises(ValueError, match="customers:pii"):
        await gw.partner_token("V00001", frozenset({"customers:pii"}))


async def test_partners_never_see_upstream_details(gw: Harness, world: World) -> None:
    """`expose_upstream_calls` (on in these tests) names internal systems: staff only, unless asked otherwise."""
    supplier = supplier_of(world)
    mine, _ = supplied_items(world, supplier)
    body = await gw.partner_query("query($s: String!) { product(sku: $s) { sku } }", {"s": mine},
                                  token=await gw.partner_token(supplier))
    assert body["data"]["product"] == {"sku": mine}
    assert "upstreamCalls" not in body.get("extensions", {}) and "upstreamMs" not in body.get("extensions", {})
