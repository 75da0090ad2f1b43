"""What a saga changed, as facts other parts react to: written to the outbox with the step that made them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ChangeKind(StrEnum):
    ORDER_PLACED = "OrderPlaced"
    ORDER_CANCELLED = "OrderCancelled"
    ORDER_SHIPPED = "OrderShipped"
    STOCK_CHANGED = "StockChanged"
    PURCHASE_ORDER_CHANGED = "PurchaseOrderChanged"
    SHIPMENT_BOOKED = "ShipmentBooked"
    SHIPMENT_CANCELLED = "ShipmentCancelled"
    INTERACTION_RECORDED = "InteractionRecorded"


@dataclass(frozen=True, slots=True)
class Change:
    """One changed entity of one system: `erp`/`stock`/`ITEM-1:WH1`, with what is useful to know about it."""

    kind: ChangeKind
    source: str  # erp | crm | supplier | logistics
    entity: str  # the source's entity name, as its ENTITY_OPERATIONS spell it (order, stock, purchase_order, ...)
    key: str
    data: dict[str, Any] = field(default_factory=dict)
