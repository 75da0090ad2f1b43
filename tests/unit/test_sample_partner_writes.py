"""The sample partner systems' writes behave as docs/sample-systems.md says: the logistics provider books and
cancels shipments, the supplier portal creates, confirms and receives purchase orders, and every write
honours an Idempotency-Key (a retry is answered, never applied twice)."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from demo.partners.logistics import create_app as logistics_app
from demo.partners.supplier import create_app as supplier_app
from demo.world import Offer, PurchaseOrder, Sizes, World

WORLD = World(seed=7, sizes=Sizes(customers=200, orders=2_000, items=50, purchase_orders=100))
ADMIN = {"x-admin-key": "admin"}
BASIC = {"authorization": "Basic " + base64.b64encode(b"u:p").decode()}
SUPPLIER_KEY = {"x-api-key": "k"}
CARRIERS = [v.number for v in WORLD.carriers]
SUPPLIERS = [v.number for v in WORLD.suppliers]
#: An order the provider carries nothing for: a new order, as placeOrder would make one.
NEW_ORDER = "SO-9000001"


def client(app: Starlette, headers: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sample", headers=headers)


@pytest.fixture
async def logistics() -> AsyncIterator[httpx.AsyncClient]:
    async with client(logistics_app(WORLD, username="u", password="p", admin_key="admin"), BASIC) as c:
        yield c


@pytest.fixture
async def supplier() -> AsyncIterator[httpx.AsyncClient]:
    async with client(supplier_app(WORLD, api_key="k", admin_key="admin"), SUPPLIER_KEY) as c:
        yield c


def key(value: str) -> dict[str, str]:
    return {"idempotency-key": value}


async def shipments_of(c: httpx.AsyncClient, ref: str) -> list[dict[str, Any]]:
    r = await c.get("/api/shipments", params={"order_refs": ref})
    assert r.status_code == 200, r.text
    shipments: list[dict[str, Any]] = r.json()["shipments"]
    return shipments


async def carried_by(c: httpx.AsyncClient, carrier: str) -> int:
    total: int = (await c.get("/api/shipments", params={"carrier": carrier})).json()["total"]
    return total


# Logistics: booking

async def test_logistics_books_a_shipment(logistics: httpx.AsyncClient) -> None:
    carrier = CARRIERS[0]
    before = await carried_by(logistics, carrier)
    now = time.time()
    r = await logistics.post("/api/shipments", json={"order_ref": NEW_ORDER, "carrier_code": carrier})
    assert r.status_code == 201, r.text
    booked = r.json()
    assert set(booked) == {"tracking_number", "carrier_code", "order_ref", "status_code", "eta", "events"}
    assert (booked["carrier_code"], booked["order_ref"], booked["status_code"], booked["events"]) == (
        carrier, NEW_ORDER, "BK", [])
    assert isinstance(booked["eta"], int) and now + 86_400 <= booked["eta"] <= now + 7 * 86_400
    assert re.fullmatch(r"[0-9]{2}[0-9A-F]{12}", booked["tracking_number"])
    assert booked["tracking_number"] not in {s.tracking_number for s in WORLD.shipments}
    # Every read lists it like any other shipment.
    assert await shipments_of(logistics, NEW_ORDER) == [booked]
    by_number = await logistics.get("/api/shipments", params={"tracking_numbers": booked["tracking_number"]})
    assert by_number.json() == {"shipments": [booked]}
    assert await carried_by(logistics, carrier) == before + 1


async def test_logistics_tracking_numbers_are_new_unique_and_the_same_on_every_run() -> None:
    runs = []
    for _ in range(2):
        async with client(logistics_app(WORLD, username="u", password="p", admin_key="admin"), BASIC) as c:
            numbers = []
            for n, carrier in enumerate(CARRIERS * 2):
                r = await c.post("/api/shipments", json={"order_ref": f"SO-{9_100_000 + n}", "carrier_code": carrier})
                assert r.status_code == 201, r.text
                numbers.append(r.json()["tracking_number"])
            runs.append(numbers)
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == len(runs[0])
    assert not set(runs[0]) & {s.tracking_number for s in WORLD.shipments}
    assert [n[:2] for n in runs[0]] == [c[-2:] for c in CARRIERS * 2]


@pytest.mark.parametrize(("body", "status"), [
    (b"{", 400),
    (b'["SO-1", "V00017"]', 422),
    (b'{"order_ref": "5000001", "carrier_code": "%s"}' % CARRIERS[0].encode(), 422),
    (b'{"order_ref": "SO-", "carrier_code": "%s"}' % CARRIERS[0].encode(), 422),
    (b'{"order_ref": "SO-12a", "carrier_code": "%s"}' % CARRIERS[0].encode(), 422),
    (b'{"order_ref": 5000001, "carrier_code": "%s"}' % CARRIERS[0].encode(), 422),
    (b'{"order_ref": "SO-1"}', 422),
    (b'{"order_ref": "SO-1", "carrier_code": "V99999"}', 422),
    (b'{"order_ref": "SO-1", "carrier_code": "%s"}' % SUPPLIERS[0].encode(), 422),  # a supplier, not a carrier
    (b'{"order_ref": "SO-1", "carrier_code": "%s", "extra": 1}' % CARRIERS[0].encode(), 422),
])
async def test_logistics_refuses_invalid_bookings(logistics: httpx.AsyncClient, body: bytes, status: int) -> None:
    r = await logistics.post("/api/shipments", content=body)
    assert r.status_code == status and r.json()["error"]
    assert await shipments_of(logistics, "SO-1") == []


async def test_logistics_refuses_a_second_live_booking_by_the_same_carrier(logistics: httpx.AsyncClient) -> None:
    first = await logistics.post("/api/shipments", json={"order_ref": NEW_ORDER, "carrier_code": CARRIERS[0]})
    again = await logistics.post("/api/shipments", json={"order_ref": NEW_ORDER, "carrier_code": CARRIERS[0]})
    assert again.status_code == 409 and first.json()["tracking_number"] in again.json()["error"]
    other = await logistics.post("/api/shipments", json={"order_ref": NEW_ORDER, "carrier_code": CARRIERS[1]})
    assert other.status_code == 201
    carried = WORLD.shipments[0]  # a shipment under way counts too
    r = await logistics.post("/api/shipments", json={"order_ref": f"SO-{carried.order}",
                                                     "carrier_code": carried.carrier})
    assert r.status_code == 409
    assert len(await shipments_of(logistics, NEW_ORDER)) == 2


async def test_logistics_writes_need_basic_auth(logistics: httpx.AsyncClient) -> None:
    body = {"order_ref": NEW_ORDER, "carrier_code": CARRIERS[0]}
    assert (await logistics.post("/api/shipments", json=body, headers={"authorization": ""})).status_code == 401
    assert (await logistics.delete("/api/shipments/X", headers={"authorization": ""})).status_code == 401
    assert await shipments_of(logistics, NEW_ORDER) == []


# Logistics: cancelling

async def test_logistics_cancels_a_booking(logistics: httpx.AsyncClient) -> None:
    carrier = CARRIERS[0]
    before = await carried_by(logistics, carrier)
    number = (await logistics.post("/api/shipments", json={"order_ref": NEW_ORDER, "carrier_code": carrier})
              ).json()["tracking_number"]
    r = await logistics.delete(f"/api/shipments/{number}")
    assert (r.status_code, r.json()) == (200, {"tracking_number": number, "cancelled": True})
    assert await shipments_of(logistics, NEW_ORDER) == []
    assert (await logistics.get("/api/shipments", params={"tracking_numbers": number})).json()["shipments"] == []
    assert await carried_by(logistics, carrier) == before
    assert (await logistics.delete(f"/api/shipments/{number}")).status_code == 404  # gone, without a key
    # The order may be booked again, under a new number.
    rebooked = await logistics.post("/api/shipments", json={"order_ref": NEW_ORDER, "carrier_code": carrier})
    assert rebooked.status_code == 201 and rebooked.json()["tracking_number"] != number


async def test_logistics_cancels_only_bookings_not_collected_yet(logistics: httpx.AsyncClient) -> None:
    under_way = WORLD.shipments[0]
    r = await logistics.delete(f"/api/shipments/{under_way.tracking_number}")
    assert r.status_code == 409 and r.json()["error"]
    assert [s["tracking_number"] for s in await shipments_of(logistics, f"SO-{under_way.order}")] == [
        s.tracking_number for s in WORLD.shipments if s.order == under_way.order]
    assert (await logistics.delete("/api/shipments/NOPE")).status_code == 404


# Logistics: idempotency and reset

async def test_logistics_writes_honour_the_idempotency_key(logistics: httpx.AsyncClient) -> None:
    body = {"order_ref": NEW_ORDER, "carrier_code": CARRIERS[0]}
    first = await logistics.post("/api/shipments", json=body, headers=key("book-1"))
    again = await logistics.post("/api/shipments", json=body, headers=key("book-1"))
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(await shipments_of(logistics, NEW_ORDER)) == 1  # applied once
    other = await logistics.post("/api/shipments", json={**body, "carrier_code": CARRIERS[1]}, headers=key("book-1"))
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["error"]
    assert len(await shipments_of(logistics, NEW_ORDER)) == 1

    number = first.json()["tracking_number"]
    cancelled = await logistics.delete(f"/api/shipments/{number}", headers=key("cancel-1"))
    retried = await logistics.delete(f"/api/shipments/{number}", headers=key("cancel-1"))
    assert (cancelled.status_code, retried.status_code) == (200, 200)
    assert retried.json() == cancelled.json() and retried.headers["idempotent-replayed"] == "true"
    assert (await logistics.delete(f"/api/shipments/{number}", headers=key("cancel-2"))).status_code == 404


async def test_logistics_concurrent_retries_of_one_key_book_once(logistics: httpx.AsyncClient) -> None:
    body = {"order_ref": NEW_ORDER, "carrier_code": CARRIERS[2]}
    answers = await asyncio.gather(*(logistics.post("/api/shipments", json=body, headers=key("book-race"))
                                     for _ in range(5)))
    assert {a.status_code for a in answers} == {201}
    assert {a.json()["tracking_number"] for a in answers} == {answers[0].json()["tracking_number"]}
    assert sum(a.headers.get("idempotent-replayed") != "true" for a in answers) == 1
    assert len(await shipments_of(logistics, NEW_ORDER)) == 1


async def test_logistics_reset_restores_shipments_and_forgets_replays(logistics: httpx.AsyncClient) -> None:
    body = {"order_ref": NEW_ORDER, "carrier_code": CARRIERS[0]}
    booked = (await logistics.post("/api/shipments", json=body, headers=key("book-reset"))).json()
    under_way = WORLD.shipments[1]
    assert (await logistics.post("/admin/reset", headers=ADMIN)).status_code == 200
    assert await shipments_of(logistics, NEW_ORDER) == []
    assert len(await shipments_of(logistics, f"SO-{under_way.order}")) == sum(
        s.order == under_way.order for s in WORLD.shipments)
    # The key is forgotten: the same request books anew (and, counting from the world again, the same number).
    again = await logistics.post("/api/shipments", json=body, headers=key("book-reset"))
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert again.json()["tracking_number"] == booked["tracking_number"]


# Supplier portal: purchase orders as JSON

def offered(supplier: str) -> list[Offer]:
    return [o for o in WORLD.offers if o.supplier == supplier]


#: A supplier with at least two offers, and an item it does not offer.
SUPPLIER = next(s for s in SUPPLIERS if len(offered(s)) >= 2)
OFFERS = offered(SUPPLIER)[:2]
UNOFFERED = next(i.number for i in WORLD.items if all(o.item != i.number for o in offered(SUPPLIER)))
HIGHEST = max(int(po.id.rsplit("-", 1)[1]) for po in WORLD.purchase_orders)


def open_po(status: str) -> PurchaseOrder:
    return next(po for po in WORLD.purchase_orders if po.status == status and len(po.lines) >= 2)


async def read_po(c: httpx.AsyncClient, number: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = (await c.get("/v2/purchase-orders", params={"ids": number})).json()["purchaseOrders"]
    assert len(found) == 1
    return found[0]


async def test_supplier_purchase_orders_say_what_was_received(supplier: httpx.AsyncClient) -> None:
    for status in ("RECEIVED", "SENT", "CONFIRMED", "PARTIAL"):
        po = next(p for p in WORLD.purchase_orders if p.status == status)
        lines = (await read_po(supplier, po.id))["lines"]
        assert [line["receivedQty"] for line in lines] == [
            line.quantity if status == "RECEIVED" else 0 for line in po.lines]


# Supplier portal: new purchase orders

async def test_supplier_creates_a_purchase_order(supplier: httpx.AsyncClient) -> None:
    today = datetime.now(UTC).date()
    r = await supplier.post("/v2/purchase-orders", json={
        "supplierCode": SUPPLIER, "lines": [{"sku": OFFERS[0].item, "qty": 5}, {"sku": OFFERS[1].item, "qty": 7}]})
    assert r.status_code == 201, r.text
    po = r.json()
    assert po["poNumber"] == f"PO-{po['createdOn'][:4]}-{HIGHEST + 1:06d}"
    assert po["createdOn"] in {today.isoformat(), datetime.now(UTC).date().isoformat()}
    created = date.fromisoformat(po["createdOn"])
    assert po == {
        "poNumber": po["poNumber"], "supplierCode": SUPPLIER, "status": "SENT", "createdOn": po["createdOn"],
        # Without a date, as soon as the slowest offer can deliver.
        "expectedOn": (created + timedelta(days=max(o.lead_time_days for o in OFFERS))).isoformat(),
        "currency": "USD",
        "lines": [{"sku": OFFERS[0].item, "qty": 5, "unitPrice": OFFERS[0].unit_price, "receivedQty": 0},
                  {"sku": OFFERS[1].item, "qty": 7, "unitPrice": OFFERS[1].unit_price, "receivedQty": 0}]}
    assert await read_po(supplier, po["poNumber"]) == po
    newest = (await supplier.get("/v2/purchase-orders", params={"limit": 1})).json()["purchaseOrders"]
    assert newest == [po]
    of_supplier = await supplier.get("/v2/purchase-orders", params={"supplier": SUPPLIER, "status": "SENT",
                                                                    "limit": 1})
    assert of_supplier.json()["purchaseOrders"] == [po]
    by_sku = (await supplier.get("/v2/purchase-orders", params={"sku": OFFERS[0].item})).json()["purchaseOrders"]
    assert po in by_sku
    second = await supplier.post("/v2/purchase-orders", json={"supplierCode": SUPPLIER,
                                                              "lines": [{"sku": OFFERS[0].item, "qty": 1}]})
    assert second.json()["poNumber"].endswith(f"-{HIGHEST + 2:06d}")


async def test_supplier_takes_a_given_price_and_date(supplier: httpx.AsyncClient) -> None:
    r = await supplier.post("/v2/purchase-orders", json={
        "supplierCode": SUPPLIER, "expectedOn": "2027-03-01",
        "lines": [{"sku": UNOFFERED, "qty": 2, "unitPrice": "19.5"}, {"sku": OFFERS[0].item, "qty": 1,
                                                                     "unitPrice": "1.00"}]})
    assert r.status_code == 201, r.text
    assert r.json()["expectedOn"] == "2027-03-01"
    assert [(line["sku"], line["unitPrice"]) for line in r.json()["lines"]] == [(UNOFFERED, "19.50"),
                                                                               (OFFERS[0].item, "1.00")]


@pytest.mark.parametrize(("body", "status"), [
    ("{", 400),
    ([SUPPLIER], 422),
    ({"supplierCode": "V99999", "lines": [{"sku": "X", "qty": 1, "unitPrice": "1.00"}]}, 422),
    ({"supplierCode": CARRIERS[0], "lines": [{"sku": "X", "qty": 1, "unitPrice": "1.00"}]}, 422),
    ({"supplierCode": SUPPLIER, "lines": []}, 422),
    ({"supplierCode": SUPPLIER}, 422),
    ({"supplierCode": SUPPLIER, "lines": [{"sku": OFFERS[0].item, "qty": 0}]}, 422),
    ({"supplierCode": SUPPLIER, "lines": [{"sku": OFFERS[0].item, "qty": -3}]}, 422),
    ({"supplierCode": SUPPLIER, "lines": [{"sku": OFFERS[0].item, "qty": "2"}]}, 422),
    ({"supplierCode": SUPPLIER, "lines": [{"sku": OFFERS[0].item, "qty": True}]}, 422),
    ({"supplierCode": SUPPLIER, "lines": [{"sku": OFFERS[0].item, "qty": 1.5}]}, 422),
    ({"supplierCode": SUPPLIER, "lines": [{"sku": OFFERS[0].item, "qty": 1}, {"sku": OFFERS[0].item, "qty": 2}]},
     422),
    ({"supplierCode": SUPPLIER, "lines": [{"sku": UNOFFERED, "qty": 1}]}, 422),  # no offer, no price
    ({"supplierCode": SUPPLIER, "lines": [{"sku": UNOFFERED, "qty": 1, "unitPrice": "cheap"}]}, 422),
    ({"supplierCode": SUPPLIER, "lines": [{"sku": UNOFFERED, "qty": 1, "unitPrice": "-1"}]}, 422),
    ({"supplierCode": SUPPLIER, "lines": [{"sku": OFFERS[0].item, "qty": 1}], "expectedOn": "next week"}, 422),
    ({"supplierCode": SUPPLIER, "lines": [{"sku": OFFERS[0].item, "qty": 1}], "note": "x"}, 422),
])
async def test_supplier_refuses_invalid_purchase_orders(supplier: httpx.AsyncClient, body: Any, status: int) -> None:
    sent = {"content": body} if isinstance(body, str) else {"json": body}
    r = await supplier.post("/v2/purchase-orders", **sent)
    assert r.status_code == status and r.json()["error"]
    ok = await supplier.post("/v2/purchase-orders", json={"supplierCode": SUPPLIER,
                                                          "lines": [{"sku": OFFERS[0].item, "qty": 1}]})
    assert ok.json()["poNumber"].endswith(f"-{HIGHEST + 1:06d}")  # the refused one took no number


# Supplier portal: confirming

async def test_supplier_confirmation_may_set_the_expected_date(supplier: httpx.AsyncClient) -> None:
    sent = open_po("SENT")
    r = await supplier.post(f"/v2/purchase-orders/{sent.id}/confirm", json={"expectedOn": "2027-01-15"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["expectedOn"]) == ("CONFIRMED", "2027-01-15")
    assert await read_po(supplier, sent.id) == r.json()
    partial = open_po("PARTIAL")
    moved = await supplier.post(f"/v2/purchase-orders/{partial.id}/confirm", json={"expectedOn": "2027-02-01"})
    assert (moved.json()["status"], moved.json()["expectedOn"]) == ("PARTIAL", "2027-02-01")
    plain = await supplier.post(f"/v2/purchase-orders/{open_po('CONFIRMED').id}/confirm")
    assert plain.status_code == 200 and plain.json()["expectedOn"] == open_po("CONFIRMED").expected.isoformat()


@pytest.mark.parametrize("body", [b"{", b'{"expectedOn": "2027-13-01"}', b'{"expectedOn": 20270101}',
                                  b'{"expectedOn": "2027-1-1"}', b'{"expectedOn": null}', b'"2027-01-01"',
                                  b'{"expectedOn": "2027-01-01", "note": "x"}'])
async def test_supplier_confirmation_refuses_a_bad_body(supplier: httpx.AsyncClient, body: bytes) -> None:
    sent = open_po("SENT")
    r = await supplier.post(f"/v2/purchase-orders/{sent.id}/confirm", content=body)
    assert r.status_code == 400 and r.json()["error"]
    assert (await read_po(supplier, sent.id))["status"] == "SENT"  # nothing applied


async def test_supplier_confirmation_of_a_closed_order_is_a_conflict_whatever_the_body(
        supplier: httpx.AsyncClient) -> None:
    received = open_po("RECEIVED")
    r = await supplier.post(f"/v2/purchase-orders/{received.id}/confirm", json={"expectedOn": "2027-01-15"})
    assert r.status_code == 409
    assert (await read_po(supplier, received.id))["expectedOn"] == received.expected.isoformat()
    assert (await supplier.post("/v2/purchase-orders/PO-0000-000000/confirm", json={})).status_code == 404


# Supplier portal: receipts

async def test_supplier_receipts_move_an_order_to_partial_then_received(supplier: httpx.AsyncClient) -> None:
    po = open_po("CONFIRMED")
    first, second = po.lines[0], po.lines[1]
    r = await supplier.post(f"/v2/purchase-orders/{po.id}/receipts", json={"lines": [{"sku": first.item, "qty": 1}]})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "PARTIAL"
    assert [line["receivedQty"] for line in r.json()["lines"]] == [1] + [0] * (len(po.lines) - 1)
    assert await read_po(supplier, po.id) == r.json()
    rest = [{"sku": first.item, "qty": first.quantity - 1}, {"sku": second.item, "qty": second.quantity}]
    rest += [{"sku": line.item, "qty": line.quantity} for line in po.lines[2:]]
    done = await supplier.post(f"/v2/purchase-orders/{po.id}/receipts", json={"lines": rest})
    assert done.status_code == 200 and done.json()["status"] == "RECEIVED"
    assert [line["receivedQty"] for line in done.json()["lines"]] == [line.quantity for line in po.lines]
    closed = await supplier.post(f"/v2/purchase-orders/{po.id}/receipts", json={"lines": [{"sku": first.item,
                                                                                           "qty": 1}]})
    assert closed.status_code == 409


async def test_supplier_receipts_refuse_what_is_not_open(supplier: httpx.AsyncClient) -> None:
    po = open_po("SENT")
    path = f"/v2/purchase-orders/{po.id}/receipts"
    first, second = po.lines[0], po.lines[1]
    for lines in ([{"sku": UNOFFERED, "qty": 1}],
                  [{"sku": first.item, "qty": first.quantity + 1}],
                  # One good line and one too many: all or nothing.
                  [{"sku": first.item, "qty": 1}, {"sku": second.item, "qty": second.quantity + 1}],
                  [{"sku": first.item, "qty": 0}], [{"sku": first.item, "qty": 1}, {"sku": first.item, "qty": 1}],
                  []):
        r = await supplier.post(path, json={"lines": lines})
        assert r.status_code == 422 and r.json()["error"], lines
    assert (await supplier.post(path, json={"items": []})).status_code == 422
    assert (await supplier.post(path, content=b"{")).status_code == 400
    unchanged = await read_po(supplier, po.id)
    assert unchanged["status"] == "SENT" and {line["receivedQty"] for line in unchanged["lines"]} == {0}
    for status in ("RECEIVED", "CANCELLED"):
        closed = open_po(status)
        r = await supplier.post(f"/v2/purchase-orders/{closed.id}/receipts",
                                json={"lines": [{"sku": closed.lines[0].item, "qty": 1}]})
        assert r.status_code == 409 and r.json()["error"]
    missing = await supplier.post("/v2/purchase-orders/PO-0000-000000/receipts",
                                  json={"lines": [{"sku": first.item, "qty": 1}]})
    assert missing.status_code == 404


# Supplier portal: idempotency and reset

async def test_supplier_writes_honour_the_idempotency_key(supplier: httpx.AsyncClient) -> None:
    body = {"supplierCode": SUPPLIER, "lines": [{"sku": OFFERS[0].item, "qty": 3}]}
    first = await supplier.post("/v2/purchase-orders", json=body, headers=key("po-1"))
    again = await supplier.post("/v2/purchase-orders", json=body, headers=key("po-1"))
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = await supplier.post("/v2/purchase-orders", json={**body, "lines": [{"sku": OFFERS[0].item, "qty": 4}]},
                                headers=key("po-1"))
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["error"]
    later = await supplier.post("/v2/purchase-orders", json=body)
    assert later.json()["poNumber"].endswith(f"-{HIGHEST + 2:06d}")  # the retries created nothing

    number = first.json()["poNumber"]
    confirm = f"/v2/purchase-orders/{number}/confirm"
    confirmed = await supplier.post(confirm, json={"expectedOn": "2027-01-01"}, headers=key("confirm-1"))
    replayed = await supplier.post(confirm, json={"expectedOn": "2027-01-01"}, headers=key("confirm-1"))
    assert replayed.json() == confirmed.json() and replayed.headers["idempotent-replayed"] == "true"
    assert (await supplier.post(confirm, json={"expectedOn": "2027-02-02"}, headers=key("confirm-1"))
            ).status_code == 422

    receipts = f"/v2/purchase-orders/{number}/receipts"
    one = {"lines": [{"sku": OFFERS[0].item, "qty": 1}]}
    received = await supplier.post(receipts, json=one, headers=key("receipt-1"))
    retried = await supplier.post(receipts, json=one, headers=key("receipt-1"))
    assert retried.json() == received.json() and retried.headers["idempotent-replayed"] == "true"
    assert (await read_po(supplier, number))["lines"][0]["receivedQty"] == 1  # counted once


async def test_supplier_concurrent_retries_of_one_key_apply_once(supplier: httpx.AsyncClient) -> None:
    body = {"supplierCode": SUPPLIER, "lines": [{"sku": OFFERS[1].item, "qty": 9}]}
    created = await asyncio.gather(*(supplier.post("/v2/purchase-orders", json=body, headers=key("po-race"))
                                     for _ in range(5)))
    assert {a.json()["poNumber"] for a in created} == {f"PO-{created[0].json()['createdOn'][:4]}-{HIGHEST + 1:06d}"}
    assert sum(a.headers.get("idempotent-replayed") != "true" for a in created) == 1
    number = created[0].json()["poNumber"]
    receipt = {"lines": [{"sku": OFFERS[1].item, "qty": 2}]}
    received = await asyncio.gather(*(supplier.post(f"/v2/purchase-orders/{number}/receipts", json=receipt,
                                                    headers=key("receipt-race")) for _ in range(5)))
    assert {a.status_code for a in received} == {200}
    assert (await read_po(supplier, number))["lines"][0]["receivedQty"] == 2


async def test_supplier_reset_restores_orders_and_forgets_replays(supplier: httpx.AsyncClient) -> None:
    body = {"supplierCode": SUPPLIER, "lines": [{"sku": OFFERS[0].item, "qty": 3}]}
    created = (await supplier.post("/v2/purchase-orders", json=body, headers=key("po-reset"))).json()
    po = open_po("CONFIRMED")
    await supplier.post(f"/v2/purchase-orders/{po.id}/receipts", json={"lines": [{"sku": po.lines[0].item,
                                                                                  "qty": 1}]})
    assert (await supplier.post("/admin/reset", headers=ADMIN)).status_code == 200
    assert (await supplier.get("/v2/purchase-orders", params={"ids": created["poNumber"]})).json() == {
        "purchaseOrders": []}
    restored = await read_po(supplier, po.id)
    assert restored["status"] == "CONFIRMED" and {line["receivedQty"] for line in restored["lines"]} == {0}
    again = await supplier.post("/v2/purchase-orders", json=body, headers=key("po-reset"))
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert again.json()["poNumber"] == created["poNumber"]  # numbered from the world's again
