"""A failing source nulls only the fields that need it; the rest of the answer arrives, with coded errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from demo.crm.app import create_app as crm_app
from demo.faults import Faults
from demo.world import World
from gateway.app import build_app
from tests.integration.expected import linked_customer
from tests.integration.gateway_harness import Harness
from tests.tokens import make_jwt

QUERY = """query($n: String!) { customer(number: $n) {
  name email creditLimit { amount } orders(first: 2) { edges { node { number shipments { status } } } }
  interactions(first: 2) { edges { node { kind } } } } }"""


@pytest.fixture
def broken(gw: Harness) -> Iterator[Harness]:
    yield gw
    for faults in gw.faults.values():
        faults.outage = faults.garbage = False


async def test_crm_outage_keeps_erp_fields(broken: Harness, world: World) -> None:
    c = linked_customer(world, min_orders=3, min_interactions=2)
    broken.faults["crm"].outage = True
    body = await broken.query(QUERY, {"n": c.erp_number})
    customer = body["data"]["customer"]
    assert customer["name"] == c.name  # both systems know the name: the ERP's answers
    assert customer["creditLimit"] is not None and len(customer["orders"]["edges"]) == 2
    assert customer["email"] is None and customer["interactions"] is None
    errors = {tuple(e["path"]): e["extensions"] for e in body["errors"]}
    assert errors[("customer", "email")] == {"code": "SOURCE_UNAVAILABLE", "source": "crm"}
    assert errors[("customer", "interactions")]["code"] == "SOURCE_UNAVAILABLE"
    assert all("http" not in e["message"] for e in body["errors"])  # no upstream URLs leak


async def test_garbage_from_logistics_is_an_upstream_bad_response(broken: Harness, world: World) -> None:
    c = linked_customer(world, min_orders=3)
    broken.faults["logistics"].garbage = True
    body = await broken.query(QUERY, {"n": c.erp_number})
    edges = body["data"]["customer"]["orders"]["edges"]
    assert [e["node"]["shipments"] for e in edges] == [None, None]
    assert {e["extensions"]["code"] for e in body["errors"]} == {"UPSTREAM_BAD_RESPONSE"}
    assert body["data"]["customer"]["email"] == c.email.lower()


async def test_crm_down_from_the_start_still_serves_erp_customers(world: World, erp_sqlite_url: str,
                                                                  tmp_path: Path) -> None:
    """No crosswalk can be built without the CRM: customers are then served from the ERP alone."""
    from demo.secrets import DemoSecrets
    from tests.integration.gateway_harness import settings_for

    c = linked_customer(world, min_orders=2)
    secrets = DemoSecrets.generate()
    crm = crm_app(world, client_id=secrets.crm_client_id, client_secret=secrets.crm_client_secret,
                  admin_key=secrets.admin_key, faults=Faults(outage=True))
    app = build_app(settings_for(erp_sqlite_url, tmp_path / "g.db", secrets), warm=False,
                    transports={"crm": httpx.ASGITransport(app=crm)})
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://g",
            headers={"authorization": "Bearer " + make_jwt(secrets.jwt_secret, roles=["admin"])}) as client:
        body = (await client.post("/graphql", json={"query": QUERY, "variables": {"n": c.erp_number}})).json()
    customer = body["data"]["customer"]
    assert customer["name"] == c.name and customer["creditLimit"] is not None
    assert len(customer["orders"]["edges"]) == 2


@pytest.mark.parametrize("operations", [("items_of_orders", "items"), ("stock_of_orders", "stock_of_items")])
async def test_a_failing_item_read_nulls_each_line_product_alone(gw: Harness, world: World,
                                                                 operations: tuple[str, str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines resolve their products (and stock) together; a failure still lands at each field's own path."""
    from sources.errors import SourceUnavailable

    async def down(*_: object) -> None:
        raise SourceUnavailable("erp", f"{operations[0]} failed")

    # Read by the orders' numbers beside the lines, then item by item when that fails: both are down.
    for name in operations:
        monkeypatch.setattr(gw.app.state.services.erp, name, down)
    body = await gw.query("{ orders(first: 3) { edges { node { number lines { quantity product { sku stock {"
                          " available } } } } } } }")
    orders = [e["node"] for e in body["data"]["orders"]["edges"]]
    assert len(orders) == 3 and all(o["lines"] and all(line["quantity"] for line in o["lines"]) for o in orders)
    field = ("product",) if operations[1] == "items" else ("product", "stock")
    expected = {("orders", "edges", i, "node", "lines", j, *field)
                for i, o in enumerate(orders) for j in range(len(o["lines"]))}
    assert {tuple(e["path"]) for e in body["errors"]} == expected
    assert {e["extensions"]["code"] for e in body["errors"]} == {"SOURCE_UNAVAILABLE"}


async def test_order_list_names_fall_back_to_the_erp_when_the_crm_is_down(broken: Harness, world: World) -> None:
    """A page of orders reads its customers' names together; with the CRM down each still falls back."""
    query = "{ orders(first: 20) { edges { node { number customer { name } } } } }"
    healthy = await broken.query(query)
    assert "errors" not in healthy
    broken.faults["crm"].outage = True
    body = await broken.query(query)
    assert "errors" not in body, body
    assert len(body["data"]["orders"]["edges"]) == len(healthy["data"]["orders"]["edges"])
    assert all(edge["node"]["customer"]["name"] for edge in body["data"]["orders"]["edges"])  # the ERP's names
