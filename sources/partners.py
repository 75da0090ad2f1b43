"""Partner systems: a supplier portal (offers, purchase orders) and a logistics provider (shipments).

Reads are batched and cached; writes (a new, confirmed or received purchase order, a booked or cancelled
shipment) go out once, with the caller's Idempotency-Key, and forget what the cache held about the record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote

from sources.base import Health, Slice
from sources.cache import Cache, NoCache
from sources.cursors import read_pages, upstream_kind
from sources.errors import UpstreamBadResponse, UpstreamRejected
from sources.mapping import (
    Field,
    RecordMap,
    code,
    decimal,
    epoch_seconds,
    integer,
    iso_date,
    many,
    money_decimal,
    strip,
    text,
)
from sources.rest import RestTransport, items_under
from sources.values import Money, PurchaseOrderStatus, ShipmentStatus

BATCH_LIMIT = 200  # both partner APIs take at most 200 keys per call
SUPPLIER_PAGE_LIMIT = 200  # and at most 200 items per page
#: The portal hands out a cursor per page; ours are (that cursor, items of its page seen), one per edge.
PURCHASE_ORDER_CURSOR = upstream_kind("purchaseOrders")


def _chunks(keys: Sequence[Any]) -> list[list[Any]]:
    return [list(keys[i: i + BATCH_LIMIT]) for i in range(0, len(keys), BATCH_LIMIT)]


# --- supplier portal --------------------------------------------------------------------------------

PO_STATUS = {"SENT": PurchaseOrderStatus.SENT, "CONFIRMED": PurchaseOrderStatus.CONFIRMED,
             "PARTIAL": PurchaseOrderStatus.PARTIALLY_RECEIVED, "RECEIVED": PurchaseOrderStatus.RECEIVED,
             "CANCELLED": PurchaseOrderStatus.CANCELLED}
PO_STATUS_CODE = {v: k for k, v in PO_STATUS.items()}


@dataclass(frozen=True, slots=True)
class SupplierOffer:
    supplier: str
    item: str
    unit_price: Money
    lead_time_days: int
    available_quantity: int
    valid_until: date


@dataclass(frozen=True, slots=True)
class PurchaseOrderLine:
    item: str
    quantity: int
    unit_price: Decimal  # the currency is the purchase order's
    received_quantity: int = 0  # of `quantity`, how much has arrived so far


@dataclass(frozen=True, slots=True)
class PurchaseOrder:
    number: str
    supplier: str
    status: PurchaseOrderStatus
    created_on: date
    expected_on: date | None
    currency: str
    lines: tuple[PurchaseOrderLine, ...]


@dataclass(frozen=True, slots=True)
class PurchaseOrderQuery:
    first: int
    after: str | None = None
    supplier: str | None = None
    status: PurchaseOrderStatus | None = None


OFFER_MAP = RecordMap(SupplierOffer, {
    "supplier": Field("supplierCode", text),
    "item": Field("sku", text),
    "unit_price": Field(("unitPrice", "currency"), money_decimal),
    "lead_time_days": Field("leadTimeDays", integer),
    "available_quantity": Field("availableQty", integer),
    "valid_until": Field("validUntil", iso_date),
})

PO_LINE_MAP = RecordMap(PurchaseOrderLine, {
    "item": Field("sku", text), "quantity": Field("qty", integer), "unit_price": Field("unitPrice", decimal),
    # Older portal answers have no receipts: nothing counted as received yet.
    "received_quantity": Field("receivedQty", integer, default=0),
})

PO_MAP = RecordMap(PurchaseOrder, {
    "number": Field("poNumber", text),
    "supplier": Field("supplierCode", text),
    "status": Field("status", code(PurchaseOrderStatus, PO_STATUS)),
    "created_on": Field("createdOn", iso_date),
    "expected_on": Field("expectedOn", lambda v: None if v is None else iso_date(v), default=None),
    "currency": Field("currency", text),
    "lines": Field("lines", many(PO_LINE_MAP)),
})


def _path_part(value: str) -> str:
    """A key as one URL path segment: a number holding `/` or `..` cannot reach another endpoint."""
    return quote(value, safe="")


def _lines(lines: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    return [{"sku": sku, "qty": quantity} for sku, quantity in lines]


def _field(raw: Any, name: str, source: str) -> str:
    value = raw.get(name) if isinstance(raw, dict) else None
    if not isinstance(value, str):
        raise UpstreamBadResponse(source, f"expected a text {name!r}")
    return value.strip()


class SupplierSource:
    ENTITY_OPERATIONS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "offer": ("offers_for_items",),
        "purchase_order": ("purchase_orders", "purchase_orders_for_items", "purchase_order_page"),
    }

    def __init__(self, transport: RestTransport, *, cache: Cache | None = None) -> None:
        self.name = transport.name
        self.transport = transport
        self.cache: Cache = cache or NoCache()

    async def _batched(self, operation: str, path: str, param: str, key: str, values: Sequence[str]) -> list[Any]:
        bodies = await asyncio.gather(*(self.transport.get_json(
            operation, path, {param: ",".join(c)}, keys=len(c)) for c in _chunks(values)))
        return [raw for body in bodies for raw in items_under(body, key, self.name)]

    async def offers_for_items(self, skus: Sequence[str], _: None = None) -> dict[str, tuple[SupplierOffer, ...]]:
        async def fetch(wanted: list[str]) -> dict[str, list[Any]]:
            grouped: dict[str, list[Any]] = {s: [] for s in wanted}
            for raw in await self._batched("offers", "/v2/offers", "sku", "offers", wanted):
                grouped.setdefault(_field(raw, "sku", self.name), []).append(raw)
            return grouped

        raw = await self.cache.many(self.name, "offers_for_items", skus, None, fetch)
        return {s: tuple(sorted((OFFER_MAP.apply(r, source=self.name) for r in raw.get(s, ())),
                                key=lambda o: o.supplier)) for s in skus}

    async def purchase_orders(self, numbers: Sequence[str], _: None = None) -> dict[str, PurchaseOrder]:
        async def fetch(wanted: list[str]) -> dict[str, Any]:
            found = await self._batched("purchase_orders", "/v2/purchase-orders", "ids", "purchaseOrders", wanted)
            return {_field(raw, "poNumber", self.name): raw for raw in found}

        raw = await self.cache.many(self.name, "purchase_orders", numbers, None, fetch)
        return {n: PO_MAP.apply(r, source=self.name) for n, r in raw.items()}

    async def purchase_orders_for_items(self, skus: Sequence[str],
                                        _: None = None) -> dict[str, tuple[PurchaseOrder, ...]]:
        async def fetch(wanted: list[str]) -> dict[str, list[Any]]:
            grouped: dict[str, dict[str, Any]] = {s: {} for s in wanted}
            found = await self._batched("purchase_orders_for_items", "/v2/purchase-orders", "sku", "purchaseOrders",
                                        wanted)
            for raw in found:
                po = PO_MAP.apply(raw, source=self.name)  # validates before anything is cached
                for line in po.lines:
                    if line.item in grouped:
                        grouped[line.item][po.number] = raw
            return {s: list(pos.values()) for s, pos in grouped.items()}

        raw = await self.cache.many(self.name, "purchase_orders_for_items", skus, None, fetch)
        return {s: tuple(PO_MAP.apply(r, source=self.name) for r in raw.get(s, ())) for s in skus}

    async def purchase_order_page(self, query: PurchaseOrderQuery) -> Slice[PurchaseOrder]:
        """One page of purchase orders, newest first, read across as many of the portal's pages as it takes."""
        after = PURCHASE_ORDER_CURSOR.after(query.after)  # a bad cursor fails before the cache or the portal
        params = {"supplier": query.supplier, "status": PO_STATUS_CODE[query.status] if query.status else None}

        async def read(cursor: str | None, limit: int) -> tuple[list[Any], Any]:
            body = await self.transport.get_json("purchase_order_page", "/v2/purchase-orders",
                                                 {**params, "limit": limit, "cursor": cursor})
            return items_under(body, "purchaseOrders", self.name), body.get("next")

        async def fetch() -> list[Any]:
            page = await read_pages(read, query.first, after, page_limit=SUPPLIER_PAGE_LIMIT, source=self.name)
            return [page.items, [list(p) for p in page.positions], page.has_next]

        # The supplier filter (a partner's row rule) is part of `query`, so of the cache key.
        items, positions, has_next = await self.cache.one(self.name, "purchase_order_page", query, fetch)
        return Slice(tuple(PO_MAP.apply(r, source=self.name) for r in items),
                     tuple(PURCHASE_ORDER_CURSOR.encode(*p) for p in positions), bool(has_next))

    async def create_purchase_order(self, supplier: str, lines: Sequence[tuple[str, int]], expected_on: date | None,
                                    *, idempotency_key: str) -> PurchaseOrder:
        """Send the supplier a new purchase order of (sku, quantity) lines, priced at its offers; status SENT."""
        body: dict[str, Any] = {"supplierCode": supplier, "lines": _lines(lines)}
        if expected_on is not None:
            body["expectedOn"] = expected_on.isoformat()
        raw = await self.transport.send_json("create_purchase_order", "POST", "/v2/purchase-orders", body,
                                             idempotency_key=idempotency_key)
        return await self._written(raw)

    async def confirm_purchase_order(self, number: str, expected_on: date | None, *,
                                     idempotency_key: str) -> PurchaseOrder:
        """Confirm a purchase order (a SENT one becomes CONFIRMED), moving its expected date when given."""
        raw = await self.transport.send_json(
            "confirm_purchase_order", "POST", f"/v2/purchase-orders/{_path_part(number)}/confirm",
            None if expected_on is None else {"expectedOn": expected_on.isoformat()}, idempotency_key=idempotency_key)
        return await self._written(raw)

    async def record_receipt(self, number: str, lines: Sequence[tuple[str, int]], *,
                             idempotency_key: str) -> PurchaseOrder:
        """Record (sku, quantity) received against a purchase order: PARTIALLY_RECEIVED or RECEIVED after."""
        raw = await self.transport.send_json(
            "record_receipt", "POST", f"/v2/purchase-orders/{_path_part(number)}/receipts", {"lines": _lines(lines)},
            idempotency_key=idempotency_key)
        return await self._written(raw)

    async def _written(self, raw: Any) -> PurchaseOrder:
        """The purchase order a write answered with; every cached read that may hold it is forgotten."""
        if not isinstance(raw, dict):
            raise UpstreamBadResponse(self.name, "expected a purchase order")
        po = PO_MAP.apply(raw, source=self.name)
        await self.cache.invalidate(self.name, "purchase_orders", [po.number])
        await self.cache.invalidate(self.name, "purchase_orders_for_items", [line.item for line in po.lines])
        await self.cache.invalidate(self.name, "purchase_order_page")
        return po

    async def health(self) -> Health:
        return await self.transport.health("/healthz")

    async def aclose(self) -> None:
        await self.transport.aclose()


# --- logistics --------------------------------------------------------------------------------------

SHIPMENT_STATUS = {"BK": ShipmentStatus.BOOKED, "PU": ShipmentStatus.PICKED_UP, "IT": ShipmentStatus.IN_TRANSIT,
                   "OD": ShipmentStatus.OUT_FOR_DELIVERY, "DL": ShipmentStatus.DELIVERED,
                   "EX": ShipmentStatus.EXCEPTION}
ORDER_REF_PREFIX = "SO-"


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    at: datetime
    status: ShipmentStatus
    location: str | None


@dataclass(frozen=True, slots=True)
class Shipment:
    tracking_number: str
    carrier: str
    order: int
    status: ShipmentStatus
    eta: datetime | None
    events: tuple[TrackingEvent, ...]


def order_ref(value: Any) -> int:
    """The logistics provider's order reference ("SO-5000001") to the ERP order number."""
    raw = text(value)
    if not raw.startswith(ORDER_REF_PREFIX) or not raw[len(ORDER_REF_PREFIX):].isdigit():
        raise ValueError(f"not an order reference: {raw!r}")
    return int(raw[len(ORDER_REF_PREFIX):])


EVENT_MAP = RecordMap(TrackingEvent, {
    "at": Field("ts", epoch_seconds),
    "status": Field("code", code(ShipmentStatus, SHIPMENT_STATUS)),
    "location": Field("location", strip, default=None),
})

SHIPMENT_MAP = RecordMap(Shipment, {
    "tracking_number": Field("tracking_number", text),
    "carrier": Field("carrier_code", text),
    "order": Field("order_ref", order_ref),
    "status": Field("status_code", code(ShipmentStatus, SHIPMENT_STATUS)),
    "eta": Field("eta", lambda v: None if v is None else epoch_seconds(v), default=None),
    "events": Field("events", many(EVENT_MAP), default=[]),
})


class LogisticsSource:
    ENTITY_OPERATIONS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "shipment": ("shipments", "shipments_for_orders"),
    }

    def __init__(self, transport: RestTransport, *, cache: Cache | None = None) -> None:
        self.name = transport.name
        self.transport = transport
        self.cache: Cache = cache or NoCache()

    async def _shipments(self, operation: str, param: str, values: Sequence[str]) -> list[tuple[Shipment, Any]]:
        bodies = await asyncio.gather(*(self.transport.get_json(
            operation, "/api/shipments", {param: ",".join(c)}, keys=len(c)) for c in _chunks(values)))
        return [(SHIPMENT_MAP.apply(raw, source=self.name), raw) for body in bodies
                for raw in items_under(body, "shipments", self.name)]

    async def shipments_for_orders(self, orders: Sequence[int], _: None = None) -> dict[int, tuple[Shipment, ...]]:
        async def fetch(wanted: list[int]) -> dict[int, list[Any]]:
            grouped: dict[int, list[Any]] = {n: [] for n in wanted}
            for shipment, raw in await self._shipments("shipments_for_orders", "order_refs",
                                                       [f"{ORDER_REF_PREFIX}{n}" for n in wanted]):
                grouped.setdefault(shipment.order, []).append(raw)
            return grouped

        raw = await self.cache.many(self.name, "shipments_for_orders", orders, None, fetch)
        return {n: tuple(SHIPMENT_MAP.apply(r, source=self.name) for r in raw.get(n, ())) for n in orders}

    async def shipments(self, tracking_numbers: Sequence[str], _: None = None) -> dict[str, Shipment]:
        async def fetch(wanted: list[str]) -> dict[str, Any]:
            found = await self._shipments("shipments", "tracking_numbers", wanted)
            return {shipment.tracking_number: raw for shipment, raw in found}

        raw = await self.cache.many(self.name, "shipments", tracking_numbers, None, fetch)
        return {t: SHIPMENT_MAP.apply(r, source=self.name) for t, r in raw.items()}

    async def book_shipment(self, order: int, carrier: str, *, idempotency_key: str) -> Shipment:
        """Book `carrier` to ship a sales order: a new shipment, status BOOKED, until the carrier collects it."""
        raw = await self.transport.send_json(
            "book_shipment", "POST", "/api/shipments",
            {"order_ref": f"{ORDER_REF_PREFIX}{order}", "carrier_code": carrier}, idempotency_key=idempotency_key)
        if not isinstance(raw, dict):
            raise UpstreamBadResponse(self.name, "expected a shipment")
        shipment = SHIPMENT_MAP.apply(raw, source=self.name)
        await self.cache.invalidate(self.name, "shipments_for_orders", [shipment.order])
        await self.cache.invalidate(self.name, "shipments", [shipment.tracking_number])
        return shipment

    async def cancel_shipment(self, tracking_number: str, *, idempotency_key: str) -> bool:
        """Cancel a booking the carrier has not collected yet. True when it is cancelled (now, or before with
        this key); False when the provider does not know it, as after a cancellation under another key: a
        compensation must not fail because its work is already done. A booking under way is UPSTREAM_REJECTED.
        """
        try:
            raw = await self.transport.send_json("cancel_shipment", "DELETE",
                                                 f"/api/shipments/{_path_part(tracking_number)}", None,
                                                 idempotency_key=idempotency_key)
        except UpstreamRejected as exc:
            if exc.status != 404:
                raise
            cancelled = False
        else:
            if not isinstance(raw, dict) or raw.get("cancelled") is not True:
                raise UpstreamBadResponse(self.name, "expected {\"cancelled\": true}")
            cancelled = True
        # Gone either way, so no cached read may still show it. Which order it was for is not in the
        # answer: every order's cached shipments go.
        await self.cache.invalidate(self.name, "shipments", [tracking_number])
        await self.cache.invalidate(self.name, "shipments_for_orders")
        return cancelled

    async def health(self) -> Health:
        return await self.transport.health("/healthz")

    async def aclose(self) -> None:
        await self.transport.aclose()
