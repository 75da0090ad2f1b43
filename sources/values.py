"""Clean business values produced by the mappings, shared by every source."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in a currency. Amounts are exact decimals, never floats."""

    amount: Decimal
    currency: str

    @classmethod
    def from_cents(cls, cents: int, currency: str) -> Money:
        return cls(Decimal(cents).scaleb(-2), currency)


class OrderStatus(enum.Enum):
    OPEN = "OPEN"
    ALLOCATED = "ALLOCATED"
    SHIPPED = "SHIPPED"
    INVOICED = "INVOICED"
    CANCELLED = "CANCELLED"


class CustomerStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class PaymentTerms(enum.Enum):
    NET_30 = "NET_30"
    NET_60 = "NET_60"
    CASH_ON_DELIVERY = "CASH_ON_DELIVERY"


class Segment(enum.Enum):
    ENTERPRISE = "ENTERPRISE"
    MID_MARKET = "MID_MARKET"
    SMB = "SMB"
    PUBLIC_SECTOR = "PUBLIC_SECTOR"


class InteractionKind(enum.Enum):
    CALL = "CALL"
    EMAIL = "EMAIL"
    TICKET = "TICKET"
    MEETING = "MEETING"
    ORDER = "ORDER"  # logged by the gateway when it places or changes an order for the customer


class PartnerKind(enum.Enum):
    SUPPLIER = "SUPPLIER"
    CARRIER = "CARRIER"


class PurchaseOrderStatus(enum.Enum):
    SENT = "SENT"
    CONFIRMED = "CONFIRMED"
    PARTIALLY_RECEIVED = "PARTIALLY_RECEIVED"
    RECEIVED = "RECEIVED"
    CANCELLED = "CANCELLED"


class ShipmentStatus(enum.Enum):
    BOOKED = "BOOKED"  # a carrier is booked; nothing collected yet (the only state a booking can be cancelled in)
    PICKED_UP = "PICKED_UP"
    IN_TRANSIT = "IN_TRANSIT"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERED = "DELIVERED"
    EXCEPTION = "EXCEPTION"
