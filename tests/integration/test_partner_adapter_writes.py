"""The gateway's source adapters write to the sample partner systems and the CRM as the sagas need: once per
call (never retried), with the caller's Idempotency-Key, recorded, refused writes as UPSTREAM_REJECTED, and
no cached read left showing the record as it was before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import httpx
import pytest
from aiocache import SimpleMemoryCache
from aiocache.serializers import NullSerializer
from starlette.applications import Starlette

from demo.crm.app import create_app as crm_app
from demo.faults import Faults
from demo.partners.logistics import create_app as logistics_app
from demo.partners.supplier import create_app as supplier_app
from demo.world import PurchaseOrder as WorldPurchaseOrder
from demo.world import Sizes, World
from sources.base import CallLog, recording
from sources.cache import CachePolicy, SourceCache
from sources.crm import CrmSource, InteractionQuery
from sources.errors import SourceUnavailable, UpstreamRejected
from sources.partners import LogisticsSource, SupplierSource
from sources.resilience import Resilience, ResiliencePolicy
from sources.rest import ApiKeyAuth, OAuth2ClientCredentials, RestTransport
from sources.values import InteractionKind, PurchaseOrderStatus, ShipmentStatus

WORLD = World(seed=5, sizes=Sizes(customers=100, orders=1_500, items=40, purchase_orders=300))
CARRIERS = [v.number for v in WORLD.carriers]
SUPPLIER = next(s.number for s in WORLD.suppliers if sum(o.supplier == s.number for o in WORLD.offers) >= 2)
OFFERS = [o for o in WORLD.offers if o.supplier == SUPPLIER][:2]
NEW_ORDER = 9_000_001


@dataclass
class Sent:
    """What reached a sample system: (method, raw path, Idempotency-Key, content type, body) per request."""

    app: Starlette
    requests: list[tuple[str, str, str | None, str | None, bytes]] = field(default_factory=list)

    def transport(self) -> httpx.AsyncBaseTransport:
        inner = httpx.ASGITransport(app=self.app)
        requests = self.requests

        class Recording(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                body = await request.aread()
                requests.append((request.method, request.url.raw_path.decode(),
                                 request.headers.get("idempotency-key"), request.headers.get("content-type"), body))
                return await inner.handle_async_request(request)

        return Recording()

    def writes(self) -> list[tuple[str, str, str | None, str | None, bytes]]:
        return [r for r in self.requests if r[0] != "GET" and r[1] != "/oauth/token"]


def cache() -> SourceCache:
    """Every read cached for a minute: a write that forgot to invalidate would show in the next read."""
    return SourceCache(SimpleMemoryCache(serializer=NullSerializer()),
                       {f"{s}.*": CachePolicy(ttl_s=60) for s in ("supplier", "logistics", "crm")})


def transport(name: str, sent: Sent, auth: httpx.Auth, retries: int = 0) -> RestTransport:
    return RestTransport(name, f"http://{name}.test", timeout_s=5, auth=auth, transport=sent.transport(),
                         resilience=Resilience(name, ResiliencePolicy(retries=retries), timeout_s=5))


@pytest.fixture
def supplier_faults() -> Faults:
    return Faults()


@pytest.fixture
def supplier_sent(supplier_faults: Faults) -> Sent:
    return Sent(supplier_app(WORLD, api_key="k", admin_key="admin", faults=supplier_faults))


@pytest.fixture
async def supplier(supplier_sent: Sent) -> AsyncIterator[SupplierSource]:
    # Retries on: a write must still go out once.
    source = SupplierSource(transport("supplier", supplier_sent, ApiKeyAuth("X-Api-Key", "k"), retries=2),
                            cache=cache())
    yield source
    await source.aclose()


@pytest.fixture
def logistics_sent() -> Sent:
    return Sent(logistics_app(WORLD, username="u", password="p", admin_key="admin"))


@pytest.fixture
async def logistics(logistics_sent: Sent) -> AsyncIterator[LogisticsSource]:
    source = LogisticsSource(transport("logistics", logistics_sent, httpx.BasicAuth("u", "p")), cache=cache())
    yield source
    await source.aclose()


@pytest.fixture
def crm_sent() -> Sent:
    return Sent(crm_app(WORLD, client_id="gw", client_secret="s3cret", admin_key="admin"))


@pytest.fixture
async def crm(crm_sent: Sent) -> AsyncIterator[CrmSource]:
    auth = OAuth2ClientCredentials("crm", "/oauth/token", "gw", "s3cret")
    source = CrmSource(transport("crm", crm_sent, auth), cache=cache())
    yield source
    await source.aclose()


def world_po(status: str) -> WorldPurchaseOrder:
    return next(po for po in WORLD.purchase_orders if po.status == status and len(po.lines) >= 2)


def calls(log: CallLog) -> list[tuple[str, str, str]]:
    return [(c.source, c.operation, c.status) for c in log.calls]


# Supplier portal

async def test_create_purchase_order_sends_one_keyed_write_and_maps_the_new_order(
        supplier: SupplierSource, supplier_sent: Sent) -> None:
    lines = [(OFFERS[0].item, 4), (OFFERS[1].item, 6)]
    with recording(CallLog()) as log:
        po = await supplier.create_purchase_order(SUPPLIER, lines, date(2027, 2, 1), idempotency_key="saga-1:po")
    assert (po.supplier, po.status, po.expected_on, po.currency) == (
        SUPPLIER, PurchaseOrderStatus.SENT, date(2027, 2, 1), "USD")
    assert [(line.item, line.quantity, line.unit_price, line.received_quantity) for line in po.lines] == [
        (o.item, q, Decimal(o.unit_price), 0) for o, (_, q) in zip(OFFERS, lines, strict=True)]
    assert calls(log) == [("supplier", "create_purchase_order", "ok")]
    assert supplier_sent.writes() == [(
        "POST", "/v2/purchase-orders", "saga-1:po", "application/json",
        b'{"supplierCode":"%s","lines":[{"sku":"%s","qty":4},{"sku":"%s","qty":6}],"expectedOn":"2027-02-01"}'
        % (SUPPLIER.encode(), OFFERS[0].item.encode(), OFFERS[1].item.encode()))]
    # A retry with the key gets the same order back; the portal created one.
    again = await supplier.create_purchase_order(SUPPLIER, lines, date(2027, 2, 1), idempotency_key="saga-1:po")
    assert again == po
    assert (await supplier.purchase_orders([po.number]))[po.number] == po


async def test_create_purchase_order_without_a_date_lets_the_portal_choose(supplier: SupplierSource,
                                                                           supplier_sent: Sent) -> None:
    po = await supplier.create_purchase_order(SUPPLIER, [(OFFERS[0].item, 1)], None, idempotency_key="k-nodate")
    assert po.expected_on is not None and po.expected_on > po.created_on
    assert b"expectedOn" not in supplier_sent.writes()[0][4]


async def test_purchase_order_writes_leave_no_stale_cached_read(supplier: SupplierSource) -> None:
    sent = world_po("SENT")
    before = (await supplier.purchase_orders([sent.id]))[sent.id]  # now cached
    for_item = await supplier.purchase_orders_for_items([sent.lines[0].item])
    assert before.status is PurchaseOrderStatus.SENT and before in for_item[sent.lines[0].item]

    confirmed = await supplier.confirm_purchase_order(sent.id, date(2027, 1, 9), idempotency_key="confirm-1")
    assert (confirmed.status, confirmed.expected_on) == (PurchaseOrderStatus.CONFIRMED, date(2027, 1, 9))
    assert (await supplier.purchase_orders([sent.id]))[sent.id] == confirmed
    assert confirmed in (await supplier.purchase_orders_for_items([sent.lines[0].item]))[sent.lines[0].item]

    first = sent.lines[0]
    partial = await supplier.record_receipt(sent.id, [(first.item, 1)], idempotency_key="receipt-1")
    assert partial.status is PurchaseOrderStatus.PARTIALLY_RECEIVED
    assert [line.received_quantity for line in partial.lines] == [1] + [0] * (len(sent.lines) - 1)
    assert (await supplier.purchase_orders([sent.id]))[sent.id] == partial
    rest = [(first.item, first.quantity - 1)] + [(line.item, line.quantity) for line in sent.lines[1:]]
    received = await supplier.record_receipt(sent.id, rest, idempotency_key="receipt-2")
    assert received.status is PurchaseOrderStatus.RECEIVED
    assert [line.received_quantity for line in received.lines] == [line.quantity for line in received.lines]


async def test_confirm_without_a_date_sends_no_body(supplier: SupplierSource, supplier_sent: Sent) -> None:
    confirmed = world_po("CONFIRMED")
    po = await supplier.confirm_purchase_order(confirmed.id, None, idempotency_key="confirm-plain")
    assert po.status is PurchaseOrderStatus.CONFIRMED and po.expected_on == confirmed.expected
    assert supplier_sent.writes() == [
        ("POST", f"/v2/purchase-orders/{confirmed.id}/confirm", "confirm-plain", None, b"")]


async def test_refused_purchase_order_writes_are_upstream_rejected(supplier: SupplierSource) -> None:
    unoffered = next(i.number for i in WORLD.items if all(o.item != i.number or o.supplier != SUPPLIER
                                                          for o in WORLD.offers))
    with recording(CallLog()) as log, pytest.raises(UpstreamRejected) as no_offer:
        await supplier.create_purchase_order(SUPPLIER, [(unoffered, 1)], None, idempotency_key="bad-1")
    assert no_offer.value.status == 422 and unoffered in no_offer.value.reason
    assert calls(log) == [("supplier", "create_purchase_order", "UPSTREAM_REJECTED")]
    with pytest.raises(UpstreamRejected) as closed:
        await supplier.confirm_purchase_order(world_po("RECEIVED").id, None, idempotency_key="bad-2")
    assert closed.value.status == 409
    with pytest.raises(UpstreamRejected) as too_many:
        po = world_po("CONFIRMED")
        await supplier.record_receipt(po.id, [(po.lines[0].item, po.lines[0].quantity + 1)],
                                      idempotency_key="bad-3")
    assert too_many.value.status == 422
    with pytest.raises(UpstreamRejected) as reused:
        await supplier.create_purchase_order(SUPPLIER, [(unoffered, 2)], None, idempotency_key="bad-1")
    assert reused.value.status == 422 and "Idempotency-Key" in reused.value.reason


async def test_a_purchase_order_number_stays_one_path_segment(supplier: SupplierSource, supplier_sent: Sent) -> None:
    with pytest.raises(UpstreamRejected) as missing:
        await supplier.confirm_purchase_order("../offers?sku=X", None, idempotency_key="odd")
    assert missing.value.status == 404
    assert supplier_sent.writes()[0][1] == "/v2/purchase-orders/..%2Foffers%3Fsku%3DX/confirm"


async def test_purchase_order_writes_are_not_retried(supplier: SupplierSource, supplier_faults: Faults) -> None:
    supplier_faults.update({"outage": True})
    with pytest.raises(SourceUnavailable):
        await supplier.create_purchase_order(SUPPLIER, [(OFFERS[0].item, 1)], None, idempotency_key="down")
    assert supplier_faults.requests == 1  # the transport retries reads twice here, writes never


# Logistics provider

async def test_book_shipment_returns_a_booked_shipment_that_reads_show_at_once(logistics: LogisticsSource,
                                                                         logistics_sent: Sent) -> None:
    assert (await logistics.shipments_for_orders([NEW_ORDER]))[NEW_ORDER] == ()  # now cached
    with recording(CallLog()) as log:
        shipment = await logistics.book_shipment(NEW_ORDER, CARRIERS[0], idempotency_key="saga-2:ship")
    assert (shipment.order, shipment.carrier, shipment.status, shipment.events) == (
        NEW_ORDER, CARRIERS[0], ShipmentStatus.BOOKED, ())
    assert shipment.eta is not None
    assert calls(log) == [("logistics", "book_shipment", "ok")]
    assert logistics_sent.writes() == [("POST", "/api/shipments", "saga-2:ship", "application/json",
                                        b'{"order_ref":"SO-%d","carrier_code":"%s"}' % (NEW_ORDER,
                                                                                       CARRIERS[0].encode()))]
    assert (await logistics.shipments_for_orders([NEW_ORDER]))[NEW_ORDER] == (shipment,)
    assert await logistics.shipments([shipment.tracking_number]) == {shipment.tracking_number: shipment}
    again = await logistics.book_shipment(NEW_ORDER, CARRIERS[0], idempotency_key="saga-2:ship")
    assert again == shipment  # replayed, not booked twice


async def test_refused_bookings_are_upstream_rejected(logistics: LogisticsSource) -> None:
    await logistics.book_shipment(NEW_ORDER, CARRIERS[0], idempotency_key="first")
    with pytest.raises(UpstreamRejected) as twice:
        await logistics.book_shipment(NEW_ORDER, CARRIERS[0], idempotency_key="second")
    assert twice.value.status == 409
    with pytest.raises(UpstreamRejected) as not_a_carrier:
        await logistics.book_shipment(NEW_ORDER, SUPPLIER, idempotency_key="third")
    assert not_a_carrier.value.status == 422 and SUPPLIER in not_a_carrier.value.reason


async def test_cancel_shipment_is_true_once_cancelled_and_false_when_gone(logistics: LogisticsSource,
                                                                          logistics_sent: Sent) -> None:
    booked = await logistics.book_shipment(NEW_ORDER, CARRIERS[1], idempotency_key="book")
    assert (await logistics.shipments_for_orders([NEW_ORDER]))[NEW_ORDER] == (booked,)  # now cached
    with recording(CallLog()) as log:
        assert await logistics.cancel_shipment(booked.tracking_number, idempotency_key="undo") is True
    assert calls(log) == [("logistics", "cancel_shipment", "ok")]
    assert logistics_sent.writes()[-1] == ("DELETE", f"/api/shipments/{booked.tracking_number}", "undo", None, b"")
    assert (await logistics.shipments_for_orders([NEW_ORDER]))[NEW_ORDER] == ()
    assert await logistics.shipments([booked.tracking_number]) == {}
    # A compensation run again: the same key answers as before; another key finds nothing left to cancel.
    assert await logistics.cancel_shipment(booked.tracking_number, idempotency_key="undo") is True
    with recording(CallLog()) as log:
        assert await logistics.cancel_shipment(booked.tracking_number, idempotency_key="undo-again") is False
    assert calls(log) == [("logistics", "cancel_shipment", "UPSTREAM_REJECTED")]
    assert await logistics.cancel_shipment("NO-SUCH-NUMBER", idempotency_key="undo-unknown") is False


async def test_a_shipment_under_way_cannot_be_cancelled(logistics: LogisticsSource) -> None:
    under_way = WORLD.shipments[0]
    with pytest.raises(UpstreamRejected) as refused:
        await logistics.cancel_shipment(under_way.tracking_number, idempotency_key="late")
    assert refused.value.status == 409
    assert under_way.tracking_number in await logistics.shipments([under_way.tracking_number])


# CRM

async def test_add_interaction_logs_an_order_interaction_once(crm: CrmSource, crm_sent: Sent) -> None:
    customer = WORLD.customers[3].crm_id
    query = InteractionQuery(first=5, kind=InteractionKind.ORDER)
    assert (await crm.interactions_of([customer], query))[customer].items == ()  # now cached
    with recording(CallLog()) as log:
        logged = await crm.add_interaction(customer, "order", "Order 9000001 placed", idempotency_key="saga-3:crm")
    assert (logged.customer, logged.kind, logged.summary) == (customer, InteractionKind.ORDER, "Order 9000001 placed")
    assert calls(log)[-1] == ("crm", "add_interaction", "ok")
    assert crm_sent.writes() == [("POST", f"/api/v1/customers/{customer}/interactions", "saga-3:crm",
                                  "application/json", b'{"kind":"order","subject":"Order 9000001 placed"}')]
    again = await crm.add_interaction(customer, "order", "Order 9000001 placed", idempotency_key="saga-3:crm")
    assert again == logged
    assert (await crm.interactions_of([customer], query))[customer].items == (logged,)


async def test_refused_interactions_are_upstream_rejected(crm: CrmSource) -> None:
    with pytest.raises(UpstreamRejected) as bad_kind:
        await crm.add_interaction(WORLD.customers[3].crm_id, "fax", "x", idempotency_key="fax")
    assert bad_kind.value.status == 422
    with pytest.raises(UpstreamRejected) as unknown:
        await crm.add_interaction("no-such-customer", "order", "x", idempotency_key="nobody")
    assert unknown.value.status == 404
