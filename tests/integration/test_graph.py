"""Every Node type resolves by global id; lists filter; the crosswalk merges CRM and ERP customers."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest

from demo.world import World
from tests.integration.gateway_harness import Harness


def gid(type_name: str, key: str) -> str:
    return base64.b64encode(f"{type_name}:{key}".encode()).decode()


NODE = """query($id: ID!) { node(id: $id) { id __typename
  ... on Customer { customerNumber: number name }
  ... on Order { number }
  ... on Product { sku }
  ... on Warehouse { code }
  ... on Partner { code kind }
  ... on PurchaseOrder { poNumber: number }
  ... on Shipment { trackingNumber }
} }"""


def node_keys(world: World) -> list[tuple[str, str, str, str]]:
    """(type, key, field, expected value) for one object of every Node type."""
    order = next(world.orders())
    shipment = world.shipments[0]
    return [
        ("Customer", world.customers[0].erp_number, "customerNumber", world.customers[0].erp_number),
        ("Order", str(order.number), "number", str(order.number)),
        ("Product", world.items[0].number, "sku", world.items[0].number),
        ("Warehouse", world.warehouses[0][0], "code", world.warehouses[0][0]),
        ("Partner", world.carriers[0].number, "kind", "CARRIER"),
        ("PurchaseOrder", world.purchase_orders[0].id, "poNumber", world.purchase_orders[0].id),
        ("Shipment", shipment.tracking_number, "trackingNumber", shipment.tracking_number),
    ]


@pytest.mark.parametrize("index", range(7))
async def test_node_resolves_every_type(gw: Harness, world: World, index: int) -> None:
    type_name, key, field, value = node_keys(world)[index]
    body = await gw.query(NODE, {"id": gid(type_name, key)})
    assert "errors" not in body, body
    node = body["data"]["node"]
    assert node["__typename"] == type_name and node["id"] == gid(type_name, key) and node[field] == value


@pytest.mark.parametrize("type_name", ["Customer", "Order", "Product", "Warehouse", "Partner", "PurchaseOrder",
                                       "Shipment"])
async def test_node_of_a_missing_object_is_null(gw: Harness, type_name: str) -> None:
    body = await gw.query(NODE, {"id": gid(type_name, "999999999")})
    assert body["data"]["node"] is None and "errors" not in body


async def test_nodes_are_batched(gw: Harness, world: World) -> None:
    ids = [gid("Customer", c.erp_number) for c in world.customers[:20]]
    body = await gw.query("query($ids: [ID!]!) { nodes(ids: $ids) { ... on Customer { number name } } }",
                          {"ids": ids})
    assert [n["number"] for n in body["data"]["nodes"]] == [c.erp_number for c in world.customers[:20]]
    assert len(gw.sql) <= 2 and gw.upstream["crm"].total == 1


async def test_customers_by_name_and_segment(gw: Harness, world: World) -> None:
    target = world.customers[5]
    word = target.name.split()[1]
    body = await gw.query("""query($f: CustomerFilter) { customers(first: 100, filter: $f) {
        edges { node { number name segment } } } }""", {"f": {"name": word.lower(), "segment": "ENTERPRISE"}})
    got = [e["node"] for e in body["data"]["customers"]["edges"]]
    expected = sorted((c for c in world.customers if word.lower() in c.name.lower() and c.segment == "enterprise"),
                      key=lambda c: (c.name, c.crm_id))
    assert [g["name"] for g in got] == [c.name for c in expected]
    assert all(g["segment"] == "ENTERPRISE" for g in got)


async def test_customer_list_pages_through_the_crm(gw: Harness, world: World) -> None:
    names: list[str] = []
    after = None
    while True:
        body = await gw.query("""query($after: String) { customers(first: 100, after: $after) {
            pageInfo { hasNextPage endCursor } edges { node { name } } } }""", {"after": after})
        page = body["data"]["customers"]
        names += [e["node"]["name"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(names) == len(world.customers)


CUSTOMER = """query($n: String!) { customer(number: $n) { id number crmId name email phone
  creditLimit { amount } } }"""


async def test_crosswalk_links_a_differently_typed_erp_number(gw: Harness, world: World) -> None:
    c = next(c for c in world.customers if c.crm_erp_number not in (None, c.erp_number))
    body = await gw.query(CUSTOMER, {"n": c.erp_number})
    got = body["data"]["customer"]
    assert got["crmId"] == c.crm_id and got["email"] == c.email.lower()


async def test_crosswalk_uses_maintained_links(gw: Harness, world: World) -> None:
    crm_id, number = world.manual_links[0]
    body = await gw.query(CUSTOMER, {"n": number})
    assert body["data"]["customer"]["crmId"] == crm_id


async def test_unlinked_records_stay_apart_and_are_reported(gw: Harness, world: World) -> None:
    linked = {crm_id for crm_id, _ in world.manual_links}
    c = next(c for c in world.customers if c.crm_erp_number is None and c.crm_id not in linked)
    erp_side = (await gw.query(CUSTOMER, {"n": c.erp_number}))["data"]["customer"]
    assert erp_side["crmId"] is None and erp_side["email"] is None  # ERP-only view
    assert erp_side["name"] == c.name and Decimal(erp_side["creditLimit"]["amount"]) == c.credit_limit_cents / 100
    crm_side = (await gw.query("query($id: ID!) { customer(id: $id) { number crmId email creditLimit { amount } } }",
                               {"id": gid("Customer", f"crm:{c.crm_id}")}))["data"]["customer"]
    assert crm_side == {"number": None, "crmId": c.crm_id, "email": c.email.lower(), "creditLimit": None}
    index = await gw.app.state.services.crosswalk.index()
    assert c.crm_id in {u.crm_id for u in index.unlinked}
    assert index.counts()["manual"] == len(world.manual_links)


async def test_phone_is_e164_with_erp_fallback(gw: Harness, world: World) -> None:
    c = next(c for c in world.customers if c.crm_phone is None and c.phone_digits
             and c.crm_erp_number == c.erp_number)
    body = await gw.query(CUSTOMER, {"n": c.erp_number})
    assert body["data"]["customer"]["phone"] == "+1" + c.phone_digits[-10:]


async def test_product_sourcing_across_erp_and_supplier(gw: Harness, world: World) -> None:
    item = world.items[0]
    body = await gw.query("""query($sku: String!) { product(sku: $sku) { sku name mainSupplier { code }
        offers { partner { code } unitPrice { amount currency } leadTimeDays availableQuantity validUntil }
        purchaseOrders { number partner { code } } } }""", {"sku": item.number})
    assert "errors" not in body, body
    got = body["data"]["product"]
    offers = sorted((o for o in world.offers if o.item == item.number), key=lambda o: o.supplier)
    assert got["mainSupplier"]["code"] == item.main_vendor
    assert [(o["partner"]["code"], o["unitPrice"]["amount"], o["leadTimeDays"]) for o in got["offers"]] == [
        (o.supplier, o.unit_price, o.lead_time_days) for o in offers]
    expected_pos = {po.id for po in world.purchase_orders if any(line.item == item.number for line in po.lines)}
    assert {po["number"] for po in got["purchaseOrders"]} == expected_pos


async def test_shipments_of_orders_are_batched(gw: Harness, world: World) -> None:
    body = await gw.query("""{ orders(first: 40, filter: {statuses: [SHIPPED, INVOICED]}) { edges { node {
        number shipments { trackingNumber status carrier { code } events { status } } } } } }""")
    assert "errors" not in body, body
    by_order = {s.order: s for s in world.shipments}
    for edge in body["data"]["orders"]["edges"]:
        number = int(edge["node"]["number"])
        got = edge["node"]["shipments"]
        if number in by_order:
            assert [s["trackingNumber"] for s in got] == [by_order[number].tracking_number]
            assert got[0]["carrier"]["code"] == by_order[number].carrier
        else:
            assert got == []
    assert gw.upstream["logistics"].total == 1


async def test_products_by_text(gw: Harness, world: World) -> None:
    body = await gw.query('{ products(first: 100, filter: {text: "bearing"}) { edges { node { sku name } } } }')
    got = [e["node"]["sku"] for e in body["data"]["products"]["edges"]]
    assert got == sorted(i.number for i in world.items if "BEARING" in i.description)


async def test_purchase_orders_of_a_partner(gw: Harness, world: World) -> None:
    supplier = world.purchase_orders[0].supplier
    body = await gw.query("""query($p: String) { purchaseOrders(first: 100, filter: {partner: $p}) {
        edges { node { number partner { code } total { amount } } } } }""", {"p": supplier})
    got = body["data"]["purchaseOrders"]["edges"]
    assert {e["node"]["number"] for e in got} == {po.id for po in world.purchase_orders if po.supplier == supplier}
    assert all(e["node"]["partner"]["code"] == supplier for e in got)
