"""Every scope-guarded field is denied (null + FORBIDDEN) to a principal without its scope, and only then.

The expected rules are written out here, apart from the table in resolvers/permissions.py, so that
removing a rule there makes its test here fail.
"""

from __future__ import annotations

import pytest

from resolvers.permissions import FIELD_SCOPES
from tests.integration.gateway_harness import Harness

CUST = 'customer(number: "100001")'
ORDER = 'order(number: "5000001")'
PROD = 'product(sku: "BRG00001")'
EXPECTED: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # coordinate: (required scope, query, path of the guarded field)
    "Query.customer": ("customers:read", f"{{ {CUST} {{ number }} }}", ("customer",)),
    "Query.customers": ("customers:read", "{ customers(first: 1) { edges { cursor } } }", ("customers",)),
    "Query.order": ("orders:read", f"{{ {ORDER} {{ number }} }}", ("order",)),
    "Query.orders": ("orders:read", "{ orders(first: 1) { edges { cursor } } }", ("orders",)),
    "Query.product": ("inventory:read", f"{{ {PROD} {{ sku }} }}", ("product",)),
    "Query.products": ("inventory:read", "{ products(first: 1) { edges { cursor } } }", ("products",)),
    "Query.warehouses": ("inventory:read", "{ warehouses { code } }", ("warehouses",)),
    "Query.partner": ("partners:read", '{ partner(code: "V00001") { code } }', ("partner",)),
    "Query.partners": ("partners:read", "{ partners { code } }", ("partners",)),
    "Query.purchaseOrders": ("purchase_orders:read", "{ purchaseOrders(first: 1) { edges { cursor } } }",
                             ("purchaseOrders",)),
    "Query.shipment": ("shipments:read", "SHIPMENT { status }", ("shipment",)),
    "Customer.email": ("customers:pii", f"{{ {CUST} {{ email }} }}", ("customer", "email")),
    "Customer.phone": ("customers:pii", f"{{ {CUST} {{ phone }} }}", ("customer", "phone")),
    "Customer.contactName": ("customers:pii", f"{{ {CUST} {{ contactName }} }}", ("customer", "contactName")),
    "Customer.creditLimit": ("customers:pii", f"{{ {CUST} {{ creditLimit {{ amount }} }} }}",
                             ("customer", "creditLimit")),
    "Customer.balance": ("customers:pii", f"{{ {CUST} {{ balance {{ amount }} }} }}", ("customer", "balance")),
    "Customer.availableCredit": ("customers:pii", f"{{ {CUST} {{ availableCredit {{ amount }} }} }}",
                                 ("customer", "availableCredit")),
    "Customer.interactions": ("customers:pii", f"{{ {CUST} {{ interactions(first: 1) {{ edges {{ cursor }} }} }} }}",
                              ("customer", "interactions")),
    "Customer.orders": ("orders:read", f"{{ {CUST} {{ orders(first: 1) {{ edges {{ cursor }} }} }} }}",
                        ("customer", "orders")),
    "Order.customer": ("customers:read", f"{{ {ORDER} {{ customer {{ number }} }} }}", ("order", "customer")),
    "Order.shipments": ("shipments:read", f"{{ {ORDER} {{ shipments {{ status }} }} }}", ("order", "shipments")),
    "OrderLine.product": ("inventory:read", f"{{ {ORDER} {{ lines {{ product {{ sku }} }} }} }}",
                          ("order", "lines", 0, "product")),
    "Shipment.order": ("orders:read", "SHIPMENT { order { number } }", ("shipment", "order")),
    "Shipment.carrier": ("partners:read", "SHIPMENT { carrier { code } }", ("shipment", "carrier")),
    "Product.mainSupplier": ("partners:read", f"{{ {PROD} {{ mainSupplier {{ code }} }} }}",
                             ("product", "mainSupplier")),
    "Product.offers": ("offers:read", f"{{ {PROD} {{ offers {{ leadTimeDays }} }} }}", ("product", "offers")),
    "Product.purchaseOrders": ("purchase_orders:read", f"{{ {PROD} {{ purchaseOrders {{ number }} }} }}",
                               ("product", "purchaseOrders")),
    "SupplierOffer.partner": ("partners:read", f"{{ {PROD} {{ offers {{ partner {{ code }} }} }} }}",
                              ("product", "offers", 0, "partner")),
    "Query.auditEvents": ("audit:read", "{ auditEvents(first: 1) { edges { cursor } } }", ("auditEvents",)),
    "Query.sagas": ("operations:read", "{ sagas(first: 1) { edges { cursor } } }", ("sagas",)),
    "PurchaseOrder.partner": ("partners:read", "{ purchaseOrders(first: 1) { edges { node { partner { code } } } } }",
                              ("purchaseOrders", "edges", 0, "node", "partner")),
}


#: Rules tested elsewhere: writes in tests/integration/test_operations.py and test_writes.py (they change data),
#: one saga by id here below.
OTHER_RULES = {"Mutation.updateCustomerContact": frozenset({"customers:write", "customers:pii"}),
               "Mutation.placeOrder": frozenset({"orders:write"}),
               "Mutation.cancelOrder": frozenset({"orders:write"}),
               "Mutation.bookShipment": frozenset({"shipments:write"}),
               "Mutation.createPurchaseOrder": frozenset({"purchase_orders:write"}),
               "Mutation.receivePurchaseOrder": frozenset({"purchase_orders:write"}),
               "Mutation.confirmPurchaseOrder": frozenset({"purchase_orders:confirm"}),
               "Query.saga": frozenset({"operations:read"})}


async def test_one_saga_needs_operations_read(gw: Harness) -> None:
    query = '{ saga(id: "0123456789abcdef0123456789abcdef") { id } }'
    denied = await gw.query(query, token=gw.jwt("all-but:operations:read"))
    assert denied["data"] == {"saga": None} and denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    allowed = await gw.query(query, token=gw.jwt("only:operations:read"))
    assert allowed == {"data": {"saga": None}, "extensions": allowed["extensions"]}


def test_the_rule_table_is_the_expected_one() -> None:
    assert dict(FIELD_SCOPES) == {**{k: frozenset({v[0]}) for k, v in EXPECTED.items()}, **OTHER_RULES}


def _query(gw: Harness, template: str) -> str:
    tracking = gw.world.shipments[0].tracking_number
    return template.replace("SHIPMENT", f'{{ shipment(trackingNumber: "{tracking}")') + (
        " }" if template.startswith("SHIPMENT") else "")


def _at(data: object, path: tuple[str | int, ...]) -> object:
    for step in path:
        if data is None:
            return None
        data = data[step]  # type: ignore[index]
    return data


@pytest.mark.parametrize("coordinate", sorted(EXPECTED))
async def test_field_denied_without_its_scope(gw: Harness, coordinate: str) -> None:
    scope, template, path = EXPECTED[coordinate]
    query = _query(gw, template)
    denied = await gw.query(query, token=gw.jwt(f"all-but:{scope}"))
    assert _at(denied.get("data"), path) is None
    forbidden = [e for e in denied.get("errors", []) if e["extensions"]["code"] == "FORBIDDEN"]
    # One error per denied field, at its path (list items each get theirs).
    assert {tuple(0 if isinstance(p, int) else p for p in e["path"]) for e in forbidden} == {path}, denied
    assert len(forbidden) == len(denied.get("errors", [])), denied
    allowed = await gw.query(query, token=gw.jwt("admin"))
    assert "errors" not in allowed, allowed
    assert _at(allowed["data"], path) is not None


async def test_denied_field_leaves_the_rest(gw: Harness) -> None:
    body = await gw.query(f"{{ {CUST} {{ name email creditLimit {{ amount }} }} }}", token=gw.jwt("support"))
    assert body["data"]["customer"]["name"] and body["data"]["customer"]["email"] is None
    assert {tuple(e["path"]) for e in body["errors"]} == {("customer", "email"), ("customer", "creditLimit")}


@pytest.mark.parametrize(("type_name", "key", "scope"), [
    ("Customer", "100001", "customers:read"), ("Order", "5000001", "orders:read"),
    ("Product", "BRG00001", "inventory:read"), ("Warehouse", "DAL", "inventory:read"),
    ("Partner", "V00001", "partners:read"), ("PurchaseOrder", "PO", "purchase_orders:read"),
    ("Shipment", "SHIP", "shipments:read"),
])
async def test_node_needs_the_type_scope(gw: Harness, type_name: str, key: str, scope: str) -> None:
    import base64

    key = {"PO": gw.world.purchase_orders[0].id, "SHIP": gw.world.shipments[0].tracking_number}.get(key, key)
    node_id = base64.b64encode(f"{type_name}:{key}".encode()).decode()
    query = "query($id: ID!) { node(id: $id) { id } }"
    denied = await gw.query(query, {"id": node_id}, token=gw.jwt(f"all-but:{scope}"))
    assert denied["data"]["node"] is None and denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    allowed = await gw.query(query, {"id": node_id}, token=gw.jwt(f"only:{scope}"))
    assert allowed["data"]["node"] == {"id": node_id}


@pytest.mark.parametrize(("scope", "operation"), [
    ("orders:read", ("erp", "orders_of_customers")),
    ("customers:pii", ("crm", "interactions_batch")),
])
async def test_look_ahead_reads_nothing_for_a_denied_field(gw: Harness, scope: str, operation: tuple[str, str]) -> None:
    """The customer lookup starts its fields' loads early, but only those of fields the principal may see."""
    query = f"{{ {CUST} {{ name orders(first: 5) {{ edges {{ node {{ number }} }} }} " \
            "interactions(first: 3) { edges { node { kind } } } } }"
    allowed = await gw.query(query, token=gw.jwt("admin"))
    assert operation in {(c["source"], c["operation"]) for c in allowed["extensions"]["upstreamCalls"]}
    denied = await gw.query(query, token=gw.jwt(f"all-but:{scope}"))
    assert operation not in {(c["source"], c["operation"]) for c in denied["extensions"]["upstreamCalls"]}
