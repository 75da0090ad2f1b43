"""Clean records as the JSON a saga step logs, and back: step results survive a restart."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sources.erp import ErpOrder, ErpOrderLine, ErpStock
from sources.partners import PurchaseOrder, PurchaseOrderLine, Shipment, TrackingEvent
from sources.values import Money, OrderStatus, PurchaseOrderStatus, ShipmentStatus


def money(value: Money) -> dict[str, str]:
    return {"amount": str(value.amount), "currency": value.currency}


def to_money(raw: dict[str, str]) -> Money:
    return Money(Decimal(raw["amount"]), raw["currency"])


def order(value: ErpOrder) -> dict[str, Any]:
    return {"number": value.number, "customer": value.customer, "placed": value.placed.isoformat(),
            "status": value.status.value, "total": money(value.total), "warehouse": value.warehouse}


def to_order(raw: dict[str, Any]) -> ErpOrder:
    return ErpOrder(int(raw["number"]), str(raw["customer"]), date.fromisoformat(raw["placed"]),
                    OrderStatus(raw["status"]), to_money(raw["total"]), raw.get("warehouse"))


def line(value: ErpOrderLine) -> dict[str, Any]:
    return {"order": value.order, "line": value.line, "item": value.item, "quantity": value.quantity,
            "unitPrice": money(value.unit_price)}


def to_line(raw: dict[str, Any]) -> ErpOrderLine:
    return ErpOrderLine(int(raw["order"]), int(raw["line"]), str(raw["item"]), int(raw["quantity"]),
                        to_money(raw["unitPrice"]))


def stock(value: ErpStock) -> dict[str, Any]:
    return {"item": value.item, "warehouse": value.warehouse, "onHand": value.on_hand, "allocated": value.allocated}


def to_stock(raw: dict[str, Any]) -> ErpStock:
    return ErpStock(str(raw["item"]), str(raw["warehouse"]), int(raw["onHand"]), int(raw["allocated"]))


def purchase_order(value: PurchaseOrder) -> dict[str, Any]:
    return {"number": value.number, "supplier": value.supplier, "status": value.status.value,
            "createdOn": value.created_on.isoformat(),
            "expectedOn": value.expected_on.isoformat() if value.expected_on else None, "currency": value.currency,
            "lines": [{"item": li.item, "quantity": li.quantity, "unitPrice": str(li.unit_price),
                       "received": li.received_quantity} for li in value.lines]}


def to_purchase_order(raw: dict[str, Any]) -> PurchaseOrder:
    return PurchaseOrder(
        str(raw["number"]), str(raw["supplier"]), PurchaseOrderStatus(raw["status"]),
        date.fromisoformat(raw["createdOn"]),
        date.fromisoformat(raw["expectedOn"]) if raw.get("expectedOn") else None, str(raw["currency"]),
        tuple(PurchaseOrderLine(str(li["item"]), int(li["quantity"]), Decimal(li["unitPrice"]),
                                int(li.get("received", 0))) for li in raw["lines"]))


def shipment(value: Shipment) -> dict[str, Any]:
    return {"trackingNumber": value.tracking_number, "carrier": value.carrier, "order": value.order,
            "status": value.status.value, "eta": value.eta.timestamp() if value.eta else None,
            "events": [{"at": e.at.timestamp(), "status": e.status.value, "location": e.location}
                       for e in value.events]}


def to_shipment(raw: dict[str, Any]) -> Shipment:
    def at(seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    return Shipment(str(raw["trackingNumber"]), str(raw["carrier"]), int(raw["order"]),
                    ShipmentStatus(raw["status"]), at(raw["eta"]) if raw.get("eta") is not None else None,
                    tuple(TrackingEvent(at(e["at"]), ShipmentStatus(e["status"]), e.get("location"))
                          for e in raw.get("events", ())))
