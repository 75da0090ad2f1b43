"""Partner systems: a supplier portal (offers, purchase orders) and a logistics provider (shipments)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sources.base import Health, Slice, decode_cursor, encode_cursor
from sources.errors import UpstreamBadResponse
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
from sources.rest import RestTransport
from sources.values import Money, PurchaseOrderStatus, ShipmentStatus

BATCH_LIMIT = 200  # both partner APIs take at most 200 keys per call
SUPPLIER_PAGE_LIMIT = 200  # and at most 200 items per page


def _chunks(keys: Sequence[Any]) -> list[list[Any]]:
    return [list(keys[i: i + BATCH_LIMIT]) for i in range(0, len(keys), BATCH_LIMIT)]


def _items(body: Any, key: str, source: str) -> list[Any]:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise UpstreamBadResponse(source, f"expected a list under {key!r}")
    return items


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


class SupplierSource:
    def __init__(self, transport: RestTransport) -> None:
        self.name = transport.name
        self.transport = transport

    async def offers_for_items(self, skus: Sequence[str], _: None = None) -> dict[str, tuple[SupplierOffer, ...]]:
        bodies = await asyncio.gather(*(self.transport.get_json(
            "offers", "/v2/offers", {"sku": ",".join(c)}, keys=len(c)) for c in _chunks(skus)))
        grouped: dict[str, list[SupplierOffer]] = defaultdict(list)
        for body in bodies:
            for raw in _items(body, "offers", self.name):
                offer = OFFER_MAP.apply(raw, source=self.name)
                grouped[offer.item].append(offer)
        return {s: tuple(sorted(grouped.get(s, ()), key=lambda o: o.supplier)) for s in skus}

    async def purchase_orders(self, numbers: Sequence[str], _: None = None) -> dict[str, PurchaseOrder]:
        bodies = await asyncio.gather(*(self.transport.get_json(
            "purchase_orders", "/v2/purchase-orders", {"ids": ",".join(c)}, keys=len(c)) for c in _chunks(numbers)))
        pos = (PO_MAP.apply(raw, source=self.name) for body in bodies
               for raw in _items(body, "purchaseOrders", self.name))
        return {po.number: po for po in pos}

    async def purchase_orders_for_items(self, skus: Sequence[str],
                                        _: None = None) -> dict[str, tuple[PurchaseOrder, ...]]:
        bodies = await asyncio.gather(*(self.transport.get_json(
            "purchase_orders_for_items", "/v2/purchase-orders", {"sku": ",".join(c)}, keys=len(c))
            for c in _chunks(skus)))
        grouped: dict[str, dict[str, PurchaseOrder]] = defaultdict(dict)
        wanted = set(skus)
        for body in bodies:
            for raw in _items(body, "purchaseOrders", self.name):
                po = PO_MAP.apply(raw, source=self.name)
                for line in po.lines:
                    if line.item in wanted:
                        grouped[line.item][po.number] = po
        return {s: tuple(grouped[s].values()) if s in grouped else () for s in skus}

    async def purchase_order_page(self, query: PurchaseOrderQuery) -> Slice[PurchaseOrder]:
        """One page of purchase orders, newest first. Our cursor is (supplier's cursor, items seen)."""
        page_cursor: str | None = None
        skip = 0
        if query.after is not None:
            parts = decode_cursor(query.after)
            if len(parts) != 2 or not isinstance(parts[0], str) or not isinstance(parts[1], int):
                raise ValueError("malformed cursor")
            page_cursor, skip = parts[0] or None, parts[1]
        body = await self.transport.get_json("purchase_order_page", "/v2/purchase-orders", {
            "supplier": query.supplier, "status": PO_STATUS_CODE[query.status] if query.status else None,
            "limit": min(SUPPLIER_PAGE_LIMIT, query.first + skip + 1), "cursor": page_cursor})
        raw = _items(body, "purchaseOrders", self.name)[skip:]
        mapped = [PO_MAP.apply(r, source=self.name) for r in raw]
        page = mapped[: query.first]
        cursors = tuple(encode_cursor(page_cursor or "", skip + i + 1) for i in range(len(page)))
        next_page = isinstance(body, dict) and bool(body.get("next"))
        return Slice(tuple(page), cursors, len(mapped) > query.first or next_page)

    async def health(self) -> Health:
        return await self.transport.health("/healthz")

    async def aclose(self) -> None:
        await self.transport.aclose()


# --- logistics --------------------------------------------------------------------------------------

SHIPMENT_STATUS = {"PU": ShipmentStatus.PICKED_UP, "IT": ShipmentStatus.IN_TRANSIT,
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
    def __init__(self, transport: RestTransport) -> None:
        self.name = transport.name
        self.transport = transport

    async def _shipments(self, operation: str, param: str, values: Sequence[str]) -> list[Shipment]:
        bodies = await asyncio.gather(*(self.transport.get_json(
            operation, "/api/shipments", {param: ",".join(c)}, keys=len(c)) for c in _chunks(values)))
        return [SHIPMENT_MAP.apply(raw, source=self.name) for body in bodies
                for raw in _items(body, "shipments", self.name)]

    async def shipments_for_orders(self, orders: Sequence[int], _: None = None) -> dict[int, tuple[Shipment, ...]]:
        found = await self._shipments("shipments_for_orders", "order_refs",
                                      [f"{ORDER_REF_PREFIX}{n}" for n in orders])
        grouped: dict[int, list[Shipment]] = defaultdict(list)
        for shipment in found:
            grouped[shipment.order].append(shipment)
        return {n: tuple(grouped.get(n, ())) for n in orders}

    async def shipments(self, tracking_numbers: Sequence[str], _: None = None) -> dict[str, Shipment]:
        found = await self._shipments("shipments", "tracking_numbers", tracking_numbers)
        return {s.tracking_number: s for s in found}

    async def health(self) -> Health:
        return await self.transport.health("/healthz")

    async def aclose(self) -> None:
        await self.transport.aclose()
