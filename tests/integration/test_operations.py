"""Business operations over HTTP: sagas across the ERP (real SQLite), the sample CRM and partner systems."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo.world import World
from tests.integration.expected import linked_customer
from tests.integration.gateway_harness import Harness, running_gateway

PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  order { number status total { amount currency } lines { quantity unitPrice { amount } product { sku } } }
  userErrors { code field message }
  saga { id state steps { name state attempts } } } }"""
CANCEL = """mutation($n: String!) { cancelOrder(number: $n, reason: "changed their mind") {
  order { number status } userErrors { code field message } saga { state } } }"""
BOOK = """mutation($o: String!, $c: String!) { bookShipment(order: $o, carrier: $c) {
  shipment { trackingNumber status } order { number status } userErrors { code message }
  saga { state steps { name state } } } }"""
STOCK = 'query($sku: String!) { product(sku: $sku) { stock { warehouse { code } onHand allocated available } } }'
CUSTOMER_ORDERS = """query($n: String!) { customer(number: $n) {
  orders(first: 5) { edges { node { number status } } }
  interactions(first: 5) { edges { node { kind summary } } } } }"""


class Erp:
    """Direct SQL on the test's own ERP copy: arrange stock and credit, and check what the gateway wrote."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            yield conn
            conn.commit()
        finally:
            conn.close()

    def one(self, sql: str, *args: Any) -> Any:
        with self.connect() as conn:
            return conn.execute(sql, args).fetchone()

    def all(self, sql: str, *args: Any) -> list[Any]:
        with self.connect() as conn:
            return conn.execute(sql, args).fetchall()

    def run(self, sql: str, *args: Any) -> None:
        with self.connect() as conn:
            conn.execute(sql, args)

    def stock_item(self) -> tuple[str, str, int]:
        """(sku, warehouse, list price cents) of an item with a balance row."""
        sku, warehouse = self.one("SELECT IBITNO, IBWHSE FROM ITMBAL ORDER BY IBITNO, IBWHSE LIMIT 1")
        price = self.one("SELECT IMLPRC FROM ITMMAS WHERE IMITNO = ?", sku)[0]
        return sku.strip(), warehouse.strip(), int(price)

    def set_available(self, sku: str, warehouse: str, available: int) -> None:
        self.run("UPDATE ITMBAL SET IBQOH = ?, IBQAL = 0 WHERE TRIM(IBITNO) = ? AND TRIM(IBWHSE) = ?",
                 available, sku, warehouse)

    def balance(self, sku: str, warehouse: str) -> tuple[int, int]:
        on_hand, allocated = self.one("SELECT IBQOH, IBQAL FROM ITMBAL WHERE TRIM(IBITNO) = ? AND TRIM(IBWHSE) = ?",
                                      sku, warehouse)
        return int(on_hand), int(allocated)

    def give_credit(self, customer: str) -> None:
        self.run("UPDATE CUSMAS SET CMCRLM = 1000000000, CMBALD = 0, CMSTAT = 'A' WHERE TRIM(CMCUNO) = ?", customer)

    def ready_to_order(self, world: World, available: int) -> tuple[Any, str, str]:
        """(customer, sku, warehouse): a CRM-linked customer with credit, and an item with `available` units."""
        c = linked_customer(world, min_orders=1)
        self.give_credit(c.erp_number)
        sku, warehouse, _ = self.stock_item()
        self.set_available(sku, warehouse, available)
        return c, sku, warehouse


@pytest.fixture
def erp(erp_sqlite_url: str, tmp_path: Path) -> Erp:
    source = Path(erp_sqlite_url.removeprefix("sqlite+aiosqlite:///"))
    copy = tmp_path / "erp.db"
    shutil.copyfile(source, copy)
    return Erp(copy)


@asynccontextmanager
async def gateway_on(world: World, erp: Erp, tmp_path: Path, **options: Any) -> AsyncIterator[Harness]:
    async with running_gateway(world, f"sqlite+aiosqlite:///{erp.path}", tmp_path / "gateway.db",
                               operations={"retry_base_s": 0.05, "inline_backoff_s": 0.01,
                                           **options.pop("operations", {})}, **options) as gw:
        yield gw


def order_input(customer: str, sku: str, warehouse: str, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    return {"input": {"customer": customer, "warehouse": warehouse, "lines": [{"sku": sku, "quantity": quantity}],
                      **extra}}


async def crm_interactions(gw: Harness, crm_id: str, subject_part: str) -> list[dict[str, Any]]:
    """The customer's "order" interactions as the sample CRM itself lists them (not through the gateway)."""
    async with httpx.AsyncClient(transport=gw.upstream["crm"].inner, base_url="http://crm.test") as crm:
        token = (await crm.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": gw.secrets.crm_client_id,
            "client_secret": gw.secrets.crm_client_secret})).json()["access_token"]
        page = await crm.get(f"/api/v1/customers/{crm_id}/interactions", params={"kind": "order", "limit": 200},
                             headers={"authorization": f"Bearer {token}"})
    assert page.status_code == 200, page.text
    return [i for i in page.json()["data"] if subject_part in i.get("subject", "")]


async def test_place_order_writes_erp_and_crm_and_every_read_shows_it(world: World, erp: Erp,
                                                                       tmp_path: Path) -> None:
    c = linked_customer(world, min_orders=1)
    erp.give_credit(c.erp_number)
    sku, warehouse, price = erp.stock_item()
    erp.set_available(sku, warehouse, 7)
    async with gateway_on(world, erp, tmp_path, cache={}) as gw:
        before = await gw.query(STOCK, {"sku": sku})  # cached now
        assert "errors" not in before, before
        await gw.query(CUSTOMER_ORDERS, {"n": c.erp_number})
        done = await gw.query(PLACE, order_input(c.erp_number, sku, warehouse, 3, reference="PO-778"),
                              token=gw.jwt("sales"))
        assert "errors" not in done, done
        payload = done["data"]["placeOrder"]
        assert payload["userErrors"] == []
        order = payload["order"]
        assert order["status"] == "ALLOCATED"
        assert order["lines"] == [{"quantity": 3, "unitPrice": {"amount": f"{price / 100:.2f}"},
                                   "product": {"sku": sku}}]
        assert payload["saga"]["state"] == "COMPLETED"
        assert [s["state"] for s in payload["saga"]["steps"]] == ["DONE", "DONE"]
        # The ERP holds the order, its line and the allocation.
        number = int(order["number"])
        assert erp.one("SELECT OHSTAT, TRIM(OHCUNO), OHTOTL FROM ORDHDR WHERE OHORNO = ?", number) == (
            "A", c.erp_number, 3 * price)
        assert erp.balance(sku, warehouse) == (7, 3)
        # The CRM has exactly one interaction naming the order and the customer's reference.
        recorded = await crm_interactions(gw, c.crm_id, f"Order {number}")
        assert len(recorded) == 1 and "PO-778" in recorded[0]["subject"]
        # Every read after the write shows it, although the reads before were cached.
        stock = (await gw.query(STOCK, {"sku": sku}))["data"]["product"]["stock"]
        level = next(s for s in stock if s["warehouse"]["code"] == warehouse)
        assert (level["onHand"], level["allocated"], level["available"]) == (7, 3, 4)
        read = await gw.query(CUSTOMER_ORDERS, {"n": c.erp_number})
        assert "data" in read, read
        after = read["data"]["customer"]
        assert after["orders"]["edges"][0]["node"] == {"number": str(number), "status": "ALLOCATED"}
        assert any(f"Order {number}" in e["node"]["summary"] for e in after["interactions"]["edges"])


@pytest.mark.parametrize("case", ["stock", "credit", "sku", "inactive", "warehouse", "customer"])
async def test_business_rules_are_user_errors_and_change_nothing(world: World, erp: Erp, tmp_path: Path,
                                                                 case: str) -> None:
    c, sku, warehouse = erp.ready_to_order(world, 2)
    variables = order_input(c.erp_number, sku, warehouse, 1)
    expected = {"stock": ("INSUFFICIENT_STOCK", "input.lines.0.quantity"), "credit": ("CREDIT_LIMIT_EXCEEDED", None),
                "sku": ("UNKNOWN_SKU", "input.lines.0.sku"), "inactive": ("CUSTOMER_INACTIVE", None),
                "warehouse": ("UNKNOWN_WAREHOUSE", "input.warehouse"),
                "customer": ("UNKNOWN_CUSTOMER", "input.customer")}[case]
    if case == "stock":
        variables["input"]["lines"][0]["quantity"] = 3
    elif case == "credit":
        erp.run("UPDATE CUSMAS SET CMCRLM = 1, CMBALD = 0 WHERE TRIM(CMCUNO) = ?", c.erp_number)
    elif case == "sku":
        variables["input"]["lines"][0]["sku"] = "NOSUCHSKU1"
    elif case == "inactive":
        erp.run("UPDATE CUSMAS SET CMSTAT = 'I' WHERE TRIM(CMCUNO) = ?", c.erp_number)
    elif case == "warehouse":
        variables["input"]["warehouse"] = "ZZ9"
    else:
        variables["input"]["customer"] = "999999"
    orders_before = erp.one("SELECT COUNT(*) FROM ORDHDR")[0]
    async with gateway_on(world, erp, tmp_path) as gw:
        body = await gw.query(PLACE, variables, token=gw.jwt("sales"))
        assert "errors" not in body, body
        payload = body["data"]["placeOrder"]
        assert payload["order"] is None and payload["saga"]["state"] == "REJECTED"
        (error,) = payload["userErrors"]
        assert error["code"] == expected[0]
        if expected[1] is not None:
            assert error["field"] == expected[1]
        assert gw.upstream["crm"].paths.get(f"/api/v1/customers/{c.crm_id}/interactions", 0) == 0
    assert erp.one("SELECT COUNT(*) FROM ORDHDR")[0] == orders_before
    assert erp.balance(sku, warehouse) == (2, 0)


async def test_fifty_concurrent_orders_for_ten_units(world: World, erp: Erp, tmp_path: Path) -> None:
    c, sku, warehouse = erp.ready_to_order(world, 10)
    async with gateway_on(world, erp, tmp_path) as gw:
        token = gw.jwt("sales")
        bodies = await asyncio.gather(*(gw.query(PLACE, order_input(c.erp_number, sku, warehouse), token=token)
                                        for _ in range(50)))
    assert all("errors" not in b for b in bodies), [b for b in bodies if "errors" in b][:1]
    placed = [b["data"]["placeOrder"]["order"]["number"] for b in bodies if b["data"]["placeOrder"]["order"]]
    refused = [b["data"]["placeOrder"]["userErrors"][0]["code"] for b in bodies
               if b["data"]["placeOrder"]["userErrors"]]
    assert len(placed) == 10 and len(set(placed)) == 10
    assert refused == ["INSUFFICIENT_STOCK"] * 40
    assert erp.balance(sku, warehouse) == (10, 10)


async def test_one_idempotency_key_five_times_at_once_and_after_a_restart(world: World, erp: Erp,
                                                                          tmp_path: Path) -> None:
    c, sku, warehouse = erp.ready_to_order(world, 5)
    orders_before = erp.one("SELECT COUNT(*) FROM ORDHDR")[0]
    body = {"query": PLACE, "variables": order_input(c.erp_number, sku, warehouse, 2)}
    async with gateway_on(world, erp, tmp_path) as gw:
        headers = {**gw.bearer(gw.jwt("sales")), "Idempotency-Key": "order-2026-12-01-a"}
        answers = await asyncio.gather(*(gw.client.post("/graphql", json=body, headers=headers) for _ in range(5)))
        assert len({a.content for a in answers}) == 1, [a.text for a in answers]
        first = answers[0].json()["data"]["placeOrder"]
        assert first["saga"]["state"] == "COMPLETED"
        secrets = gw.secrets
        assert len(await crm_interactions(gw, c.crm_id, f"Order {first['order']['number']}")) == 1
    async with gateway_on(world, erp, tmp_path, secrets=secrets) as again:
        replay = await again.client.post("/graphql", json=body, headers=headers)
        assert replay.content == answers[0].content
        assert replay.headers.get("idempotent-replayed") == "true"
    assert erp.one("SELECT COUNT(*) FROM ORDHDR")[0] == orders_before + 1
    assert erp.balance(sku, warehouse) == (5, 2)


async def test_crm_down_the_order_stands_and_its_interaction_is_recorded_once_when_it_is_back(
        world: World, erp: Erp, tmp_path: Path) -> None:
    c, sku, warehouse = erp.ready_to_order(world, 5)
    async with gateway_on(world, erp, tmp_path) as gw:
        gw.faults["crm"].outage = True
        body = await gw.query(PLACE, order_input(c.erp_number, sku, warehouse), token=gw.jwt("sales"))
        assert "errors" not in body, body
        payload = body["data"]["placeOrder"]
        number = payload["order"]["number"]
        assert payload["saga"]["state"] == "PENDING"
        assert [s["state"] for s in payload["saga"]["steps"]] == ["DONE", "RETRYING"]
        assert erp.one("SELECT OHSTAT FROM ORDHDR WHERE OHORNO = ?", int(number)) == ("A",)
        operations = gw.app.state.services.operations
        await asyncio.sleep(0.2)
        await operations.resume()  # still down: stays pending
        saga = await operations.get(payload["saga"]["id"])
        assert saga.state == "PENDING"
        gw.faults["crm"].outage = False
        for _ in range(100):
            await asyncio.sleep(0.05)
            await operations.resume()
            saga = await operations.get(payload["saga"]["id"])
            if saga.state == "COMPLETED":
                break
        assert saga.state == "COMPLETED"
        assert len(await crm_interactions(gw, c.crm_id, f"Order {number}")) == 1
        await operations.resume()
        assert len(await crm_interactions(gw, c.crm_id, f"Order {number}")) == 1


async def test_book_shipment_with_the_erp_failing_cancels_the_booking_and_says_so(
        world: World, erp: Erp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    number, = erp.one("SELECT OHORNO FROM ORDHDR WHERE OHSTAT = 'A' ORDER BY OHORNO DESC LIMIT 1")
    carrier = next(v.number for v in world.vendors if v.kind == "C")
    monkeypatch.setenv("GATEWAY_FAULT_ERP_WRITE", "mark_shipped")
    async with gateway_on(world, erp, tmp_path) as gw:
        body = await gw.query(BOOK, {"o": str(number), "c": carrier}, token=gw.jwt("ops"))
        assert body["data"] == {"bookShipment": None}, body
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "SOURCE_UNAVAILABLE"
        assert "undone: book_with_carrier" in error["message"]
        assert error["extensions"]["saga"]["state"] == "FAILED"
        assert error["extensions"]["saga"]["steps"] == {"check_order": "DONE", "book_with_carrier": "COMPENSATED",
                                                        "mark_erp_order_shipped": "FAILED"}
        paths = gw.upstream["logistics"].paths
        assert paths["/api/shipments"] >= 1 and sum(n for p, n in paths.items() if p.startswith("/api/shipments/")) == 1
        shipments = (await gw.query('query($n: String!) { order(number: $n) { shipments { carrier { code } '
                                    'status } } }', {"n": str(number)}))["data"]["order"]["shipments"]
        assert all(s["status"] != "BOOKED" for s in shipments)
    assert erp.one("SELECT OHSTAT FROM ORDHDR WHERE OHORNO = ?", number) == ("A",)


async def test_book_shipment_ships_the_order_and_its_stock(world: World, erp: Erp, tmp_path: Path) -> None:
    c, sku, warehouse = erp.ready_to_order(world, 9)
    carrier = next(v.number for v in world.vendors if v.kind == "C")
    async with gateway_on(world, erp, tmp_path) as gw:
        placed = await gw.query(PLACE, order_input(c.erp_number, sku, warehouse, 4), token=gw.jwt("sales"))
        number = placed["data"]["placeOrder"]["order"]["number"]
        assert erp.balance(sku, warehouse) == (9, 4)
        body = await gw.query(BOOK, {"o": number, "c": carrier}, token=gw.jwt("ops"))
        assert "errors" not in body, body
        payload = body["data"]["bookShipment"]
        assert payload["order"]["status"] == "SHIPPED" and payload["shipment"]["status"] == "BOOKED"
        assert payload["saga"]["state"] == "COMPLETED"
        again = await gw.query(BOOK, {"o": number, "c": carrier}, token=gw.jwt("ops"))
        assert again["data"]["bookShipment"]["userErrors"][0]["code"] == "ORDER_NOT_SHIPPABLE"
        shipments = (await gw.query('query($n: String!) { order(number: $n) { status shipments { trackingNumber '
                                    'status } } }', {"n": number}))["data"]["order"]
        assert shipments == {"status": "SHIPPED", "shipments": [payload["shipment"]]}
    assert erp.balance(sku, warehouse) == (5, 0)


async def test_cancel_order_releases_the_allocation_once(world: World, erp: Erp, tmp_path: Path) -> None:
    c, sku, warehouse = erp.ready_to_order(world, 5)
    async with gateway_on(world, erp, tmp_path) as gw:
        token = gw.jwt("sales")
        placed = await gw.query(PLACE, order_input(c.erp_number, sku, warehouse, 4), token=token)
        number = placed["data"]["placeOrder"]["order"]["number"]
        assert erp.balance(sku, warehouse) == (5, 4)
        done = await gw.query(CANCEL, {"n": number}, token=token)
        assert done["data"]["cancelOrder"]["order"] == {"number": number, "status": "CANCELLED"}
        assert erp.balance(sku, warehouse) == (5, 0)
        again = await gw.query(CANCEL, {"n": number}, token=token)
        (error,) = again["data"]["cancelOrder"]["userErrors"]
        assert error["code"] == "ORDER_NOT_CANCELLABLE" and "cancelled" in error["message"]
        assert erp.balance(sku, warehouse) == (5, 0)
        assert len(await crm_interactions(gw, c.crm_id, f"Order {number} cancelled")) == 1


CREATE_PO = """mutation($input: CreatePurchaseOrderInput!) { createPurchaseOrder(input: $input) {
  purchaseOrder { number status lines { quantity product { sku } } } userErrors { code field message }
  saga { state } } }"""
RECEIVE_PO = """mutation($input: ReceivePurchaseOrderInput!) { receivePurchaseOrder(input: $input) {
  purchaseOrder { number status } stock { warehouse { code } onHand } userErrors { code field message }
  saga { state steps { name state } } } }"""
CONFIRM_PO = """mutation Confirm($n: String!, $on: Date) { confirmPurchaseOrder(number: $n, expectedOn: $on) {
  purchaseOrder { number status expectedOn } userErrors { code message } saga { state } } }"""


def offer_of(world: World) -> tuple[str, str]:
    """(supplier, sku) of an offer the supplier portal knows, for an item the ERP knows."""
    items = {i.number for i in world.items}
    offer = next(o for o in world.offers if o.item in items)
    return offer.supplier, offer.item


async def test_a_purchase_order_is_created_confirmed_by_its_supplier_and_received_into_stock(
        world: World, erp: Erp, tmp_path: Path) -> None:
    supplier, sku = offer_of(world)
    warehouse = erp.one("SELECT TRIM(WHWHSE) FROM WHSMAS ORDER BY WHWHSE LIMIT 1")[0]
    erp.run("DELETE FROM ITMBAL WHERE TRIM(IBITNO) = ? AND TRIM(IBWHSE) = ?", sku, warehouse)
    async with gateway_on(world, erp, tmp_path) as gw:
        created = await gw.query(CREATE_PO, {"input": {"supplier": supplier, "lines": [{"sku": sku, "quantity": 12}],
                                                       "expectedOn": "2027-01-15"}}, token=gw.jwt("ops"))
        assert "errors" not in created, created
        po = created["data"]["createPurchaseOrder"]["purchaseOrder"]
        assert po["status"] == "SENT" and po["lines"] == [{"quantity": 12, "product": {"sku": sku}}]
        token = await gw.partner_token(supplier)
        confirmed = await gw.partner_query(CONFIRM_PO, {"n": po["number"], "on": "2027-01-10"}, token=token)
        assert "errors" not in confirmed, confirmed
        payload = confirmed["data"]["confirmPurchaseOrder"]
        assert payload["purchaseOrder"] == {"number": po["number"], "status": "CONFIRMED", "expectedOn": "2027-01-10"}
        assert payload["saga"] is None  # partners are not shown the gateway's steps
        partial = await gw.query(RECEIVE_PO, {"input": {"number": po["number"], "warehouse": warehouse,
                                                        "lines": [{"sku": sku, "quantity": 5}]}}, token=gw.jwt("ops"))
        assert "errors" not in partial, partial
        got = partial["data"]["receivePurchaseOrder"]
        assert got["purchaseOrder"]["status"] == "PARTIALLY_RECEIVED"
        assert got["stock"] == [{"warehouse": {"code": warehouse}, "onHand": 5}]
        too_many = await gw.query(RECEIVE_PO, {"input": {"number": po["number"], "warehouse": warehouse,
                                                         "lines": [{"sku": sku, "quantity": 8}]}}, token=gw.jwt("ops"))
        (error,) = too_many["data"]["receivePurchaseOrder"]["userErrors"]
        assert error["code"] == "QUANTITY_EXCEEDS_ORDER" and error["field"] == "input.lines.0.quantity"
        rest = await gw.query(RECEIVE_PO, {"input": {"number": po["number"], "warehouse": warehouse,
                                                     "lines": [{"sku": sku, "quantity": 7}]}}, token=gw.jwt("ops"))
        assert rest["data"]["receivePurchaseOrder"]["purchaseOrder"]["status"] == "RECEIVED"
        stock = (await gw.query(STOCK, {"sku": sku}))["data"]["product"]["stock"]
        assert next(s for s in stock if s["warehouse"]["code"] == warehouse)["onHand"] == 12
    assert erp.balance(sku, warehouse) == (12, 0)


async def test_a_supplier_cannot_confirm_another_suppliers_purchase_order(world: World, erp: Erp,
                                                                          tmp_path: Path) -> None:
    po = next(p for p in world.purchase_orders if p.status == "SENT")
    other = next(v.number for v in world.vendors if v.kind == "S" and v.number != po.supplier)
    async with gateway_on(world, erp, tmp_path) as gw:
        token = await gw.partner_token(other)
        body = await gw.partner_query(CONFIRM_PO, {"n": po.id}, token=token)
        assert body["data"] == {"confirmPurchaseOrder": None}
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert not any("confirm" in p for p in gw.upstream["supplier"].paths)
        # Staff do not confirm for the supplier, whatever their scopes.
        staff = await gw.query(CONFIRM_PO, {"n": po.id}, token=gw.jwt("admin"))
        assert staff["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        # And the supplier's own token needs the confirm scope and a trusted document.
        owner = await gw.partner_token(po.supplier, frozenset({"purchase_orders:read"}))
        unscoped = await gw.partner_query(CONFIRM_PO, {"n": po.id}, token=owner)
        assert unscoped["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        mine = await gw.partner_token(po.supplier)
        free = await gw.client.post("/graphql", json={"query": CONFIRM_PO + " ", "variables": {"n": po.id}},
                                    headers=gw.bearer(mine))
        assert free.status_code == 403 and free.json()["errors"][0]["extensions"]["code"] == "TRUSTED_DOCUMENT_REQUIRED"
        assert not any("confirm" in p for p in gw.upstream["supplier"].paths)


WRITES = {
    "placeOrder": ("orders:write", PLACE, {"input": {"customer": "100001", "warehouse": "DAL",
                                                     "lines": [{"sku": "BRG00001", "quantity": 1}]}}),
    "cancelOrder": ("orders:write", CANCEL, {"n": "5000001"}),
    "bookShipment": ("shipments:write", BOOK, {"o": "5000001", "c": "V00001"}),
    "createPurchaseOrder": ("purchase_orders:write", CREATE_PO, {"input": {"supplier": "V00001", "lines": [
        {"sku": "BRG00001", "quantity": 1}]}}),
    "receivePurchaseOrder": ("purchase_orders:write", RECEIVE_PO, {"input": {"number": "PO-2026-000001",
                                                                             "warehouse": "DAL", "lines": [
                                                                                 {"sku": "BRG00001", "quantity": 1}]}}),
}


@pytest.mark.parametrize("mutation", sorted(WRITES))
async def test_each_operation_needs_its_scope_and_refused_ones_touch_nothing(gw: Harness, mutation: str) -> None:
    scope, document, variables = WRITES[mutation]
    operations = gw.app.state.services.operations
    sagas_before = len(await operations.list(limit=10_000))
    body = await gw.query(document, variables, token=gw.jwt(f"all-but:{scope}"))
    assert body["data"] == {mutation: None}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], body
    assert gw.sql == [] and all(t.total == 0 for t in gw.upstream.values())
    assert len(await operations.list(limit=10_000)) == sagas_before  # no saga was even started


async def test_the_audit_record_carries_the_saga_and_each_steps_outcome(world: World, erp: Erp,
                                                                        tmp_path: Path) -> None:
    c, sku, warehouse = erp.ready_to_order(world, 3)
    async with gateway_on(world, erp, tmp_path) as gw:
        gw.faults["crm"].outage = True
        placed = await gw.query(PLACE, order_input(c.erp_number, sku, warehouse), token=gw.jwt("sales"))
        saga_id = placed["data"]["placeOrder"]["saga"]["id"]
        trail = await gw.query("""{ auditEvents(first: 5) { edges { node {
            sagas { id kind state steps { name state attempts } } } } } }""")
        gw.faults["crm"].outage = False
    events = [e["node"] for e in trail["data"]["auditEvents"]["edges"] if e["node"]["sagas"]]
    assert events[0]["sagas"] == [{"id": saga_id, "kind": "placeOrder", "state": "PENDING", "steps": [
        {"name": "write_erp_order", "state": "DONE", "attempts": 1},
        {"name": "record_crm_interaction", "state": "RETRYING", "attempts": 1}]}]


async def test_a_saga_that_cannot_finish_needs_attention_and_is_listed(world: World, erp: Erp,
                                                                       tmp_path: Path) -> None:
    c, sku, warehouse = erp.ready_to_order(world, 3)
    async with gateway_on(world, erp, tmp_path, operations={"max_attempts": 1}) as gw:
        gw.faults["crm"].outage = True
        placed = await gw.query(PLACE, order_input(c.erp_number, sku, warehouse), token=gw.jwt("sales"))
        payload = placed["data"]["placeOrder"]
        assert payload["order"] is not None and payload["saga"]["state"] == "NEEDS_ATTENTION"
        listed = await gw.query("""{ sagas(first: 10, states: [NEEDS_ATTENTION]) { edges { node {
            id kind state errorCode error steps { name state } } } } }""", token=gw.jwt("ops"))
        (node,) = [e["node"] for e in listed["data"]["sagas"]["edges"]]
        assert node["id"] == payload["saga"]["id"] and node["errorCode"] == "SOURCE_UNAVAILABLE"
        assert "gave up after 1 attempts" in node["error"]
        denied = await gw.query("{ sagas(first: 1) { edges { cursor } } }", token=gw.jwt("sales"))
        assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        gw.faults["crm"].outage = False


async def fifty_orders_for_ten_units(world: World, url: str, tmp_path: Path) -> None:
    from sqlalchemy import select, update
    from sqlalchemy.ext.asyncio import create_async_engine

    from demo.erp.schema import CUSMAS, ITMBAL
    from demo.erp.seed import seed

    await seed(url, world)
    c = linked_customer(world, min_orders=1)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(update(CUSMAS).where(CUSMAS.c.CMCUNO == c.erp_number.rjust(8)).values(
                CMCRLM=1_000_000_000, CMBALD=0, CMSTAT="A", CMCURR="USD"))
            sku, warehouse = (await conn.execute(select(ITMBAL.c.IBITNO, ITMBAL.c.IBWHSE)
                                                 .order_by(ITMBAL.c.IBITNO, ITMBAL.c.IBWHSE))).first()
            here = (ITMBAL.c.IBITNO == sku) & (ITMBAL.c.IBWHSE == warehouse)
            await conn.execute(update(ITMBAL).where(here).values(IBQOH=10, IBQAL=0))
        async with running_gateway(world, url, tmp_path / "gateway.db") as gw:
            token = gw.jwt("sales")
            bodies = await asyncio.gather(*(gw.query(PLACE, order_input(c.erp_number, sku.strip(), warehouse.strip()),
                                                     token=token) for _ in range(50)))
        placed = [b["data"]["placeOrder"]["order"]["number"] for b in bodies if b["data"]["placeOrder"]["order"]]
        refused = [b["data"]["placeOrder"]["userErrors"][0]["code"] for b in bodies
                   if b["data"]["placeOrder"]["userErrors"]]
        assert len(placed) == 10 and len(set(placed)) == 10, bodies[:1]
        assert refused == ["INSUFFICIENT_STOCK"] * 40
        async with engine.connect() as conn:
            balance = (await conn.execute(select(ITMBAL.c.IBQOH, ITMBAL.c.IBQAL).where(here))).one()
        assert tuple(balance) == (10, 10)
    finally:
        await engine.dispose()


async def test_fifty_concurrent_orders_on_postgresql(world: World, postgres_url: str, tmp_path: Path) -> None:
    await fifty_orders_for_ten_units(world, postgres_url, tmp_path)


async def test_fifty_concurrent_orders_on_mariadb(world: World, mariadb_url: str, tmp_path: Path) -> None:
    await fifty_orders_for_ten_units(world, mariadb_url, tmp_path)
