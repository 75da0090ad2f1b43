"""Shared GraphQL types: Money, the business enums, connections and input errors."""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Iterable, Mapping
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.relay import GlobalIDValueError
from strawberry.types import Info
from strawberry.types.enum import has_enum_definition

from resolvers.context import Context
from resolvers.loaders import BatchFn
from sources import values
from sources.base import Slice
from sources.keys import KeyFormat, MalformedKey
from sources.values import (
    CustomerStatus,
    InteractionKind,
    OrderStatus,
    PartnerKind,
    PaymentTerms,
    PurchaseOrderStatus,
    Segment,
    ShipmentStatus,
)

__all__ = ["CustomerStatus", "InteractionKind", "OrderStatus", "PartnerKind", "PaymentTerms",
           "PurchaseOrderStatus", "Segment", "ShipmentStatus"]

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K", bound=Hashable)

GatewayInfo = Info[Context, None]

#: A relation not resolved ahead (by a list resolver); its field then loads it.
NOT_LOADED: Any = object()



def describe_enum(cls: type[enum.Enum], description: str, values: Mapping[str, str], name: str | None = None) -> None:
    """Register a source's enum with strawberry in place, with descriptions of the enum and of each value (the
    sources know nothing of GraphQL, so the values' descriptions are given here)."""
    strawberry.enum(cls, name=name, description=description)
    assert has_enum_definition(cls)
    for value in cls.__strawberry_definition__.values:
        value.description = values[value.name]


# The business enums are the sources' own; the ERP's one-letter codes are named for who reads the legacy data.
describe_enum(OrderStatus, "Where an order is in its life (ERP ORDHDR.OHSTAT).", {
    "OPEN": "Entered; no stock reserved for it yet (ERP code O).",
    "ALLOCATED": "Stock is reserved for its lines in the shipping warehouse; not shipped yet (A).",
    "SHIPPED": "Has left the warehouse; `Order.shipments` tracks it (S).",
    "INVOICED": "Shipped and invoiced to the customer (I).",
    "CANCELLED": "Cancelled; nothing more is delivered or invoiced (C).",
})
describe_enum(Segment, "The customer's market segment, as the CRM's account team sets it.", {
    "ENTERPRISE": "Large corporate accounts (CRM `enterprise`).",
    "MID_MARKET": "Mid-sized companies (CRM `mid_market`).",
    "SMB": "Small and medium-sized businesses (CRM `smb`).",
    "PUBLIC_SECTOR": "Government bodies, schools, hospitals and other public buyers (CRM `public_sector`).",
})
describe_enum(CustomerStatus, "The state of the customer's ERP account (CUSMAS.CMSTAT).", {
    "ACTIVE": "An open account (ERP code A).",
    "INACTIVE": "An account the ERP marks inactive (code I); its orders and history stay readable.",
})
describe_enum(PaymentTerms, "When the customer pays its invoices (ERP CUSMAS.CMTERM).", {
    "NET_30": "Due 30 days after the invoice date (ERP code N30).",
    "NET_60": "Due 60 days after the invoice date (ERP code N60).",
    "CASH_ON_DELIVERY": "Paid when the goods are delivered; no credit (ERP code COD).",
})
describe_enum(InteractionKind, "What kind of contact with the customer the CRM logged.", {
    "CALL": "A phone call (CRM `call`).",
    "EMAIL": "An e-mail to or from the customer (CRM `email`).",
    "TICKET": "A support ticket the customer opened (CRM `ticket`).",
    "MEETING": "A meeting, on site or online (CRM `meeting`).",
    "ORDER": "An order placed or changed through this API, logged by the gateway (CRM `order`).",
})
describe_enum(PartnerKind, "What a partner does for the company (ERP VENMAS.VNTYPE).", {
    "SUPPLIER": "Sells the company goods: has offers and purchase orders in the supplier portal (ERP code S).",
    "CARRIER": "Carries the company's shipments; the logistics provider tracks them (ERP code C).",
})
describe_enum(PurchaseOrderStatus, "Where a purchase order is, as the supplier portal reports it.", {
    "SENT": "Sent to the supplier, not confirmed yet.",
    "CONFIRMED": "The supplier accepted it; nothing has arrived yet.",
    "PARTIALLY_RECEIVED": "Some of the ordered goods have arrived.",
    "RECEIVED": "All the ordered goods have arrived.",
    "CANCELLED": "Cancelled; nothing (more) will arrive.",
})
describe_enum(ShipmentStatus, "Where a shipment is, as the logistics provider last scanned it.", {
    "BOOKED": "Booked with a carrier that has not collected it yet; the booking can still be cancelled (BK).",
    "PICKED_UP": "The carrier has collected it from the warehouse (provider code PU).",
    "IN_TRANSIT": "On its way between the carrier's depots (IT).",
    "OUT_FOR_DELIVERY": "On the vehicle for the final delivery (OD).",
    "DELIVERED": "Handed over to the recipient (DL).",
    "EXCEPTION": "Held up (damage, wrong address, refused, ...); `events` says where and when (EX).",
})


@strawberry.type(description="An exact amount of money. `amount` is a decimal string, never a float.")
class Money:
    amount: Decimal = strawberry.field(description="The exact amount as a decimal string, e.g. \"1234.50\"; "
                                                   "parse it with a decimal type, never a float.")
    currency: str = strawberry.field(description="ISO 4217 currency code, e.g. USD.")

    @classmethod
    def of(cls, money: values.Money | None) -> Money | None:
        return None if money is None else cls(amount=money.amount, currency=money.currency)


async def load_nodes(info: GatewayInfo, fn: BatchFn[K, None, R], keys: Iterable[K],
                     make: Callable[[R], T]) -> list[T | None]:
    """Records by key through the request's loader, each made into its GraphQL object (None if absent)."""
    found = await info.context.loaders.load_many(fn, list(keys))
    return [None if r is None else make(r) for r in found]


async def load_node(info: GatewayInfo, fn: BatchFn[K, None, R], key: K, make: Callable[[R], T]) -> T | None:
    found = await info.context.loaders.load(fn, key)  # one future, no gather: this runs per list item
    return None if found is None else make(found)


def bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


#: The longest global id decoded: base64 of a type name and the longest key, with room to spare.
MAX_GLOBAL_ID_LENGTH = 200


def key_argument(value: str, key: KeyFormat[K], argument: str) -> K:
    """The key an argument names, cleaned by its format (sources.keys); BAD_USER_INPUT naming the argument if
    it cannot name one. Called before any upstream call."""
    try:
        return key.parse(value)
    except MalformedKey:
        raise bad_input(f"`{argument}` must be {key.description}") from None


def global_id_argument(value: str, argument: str) -> relay.GlobalID:
    """The type name and node id in a global id argument; BAD_USER_INPUT naming the argument if it is not the
    base64 of `Type:key` (empty, an int, garbage, too long)."""
    if 0 < len(value) <= MAX_GLOBAL_ID_LENGTH:
        try:
            return relay.GlobalID.from_id(value)
        except GlobalIDValueError:
            pass
    raise bad_input(f"`{argument}` is not an id this API issued")


def typed_id_argument(value: str, type_name: str, key: KeyFormat[K], argument: str) -> K:
    """The key in a global id argument that must be of `type_name`; BAD_USER_INPUT naming the argument if it is
    not a global id, is one of another type, or holds a key its type cannot have."""
    global_id = global_id_argument(value, argument)
    if global_id.type_name != type_name:
        raise bad_input(f"`{argument}` must be an id of type {type_name}")
    return id_key(global_id, key, argument)


def id_key(global_id: relay.GlobalID, key: KeyFormat[K], argument: str) -> K:
    """The key in a decoded global id argument, by its type's key format; BAD_USER_INPUT naming the argument
    if its type's objects cannot have that key."""
    try:
        return key.parse(global_id.node_id)
    except MalformedKey:
        raise bad_input(f"`{argument}` must be an id of type {global_id.type_name} with a key that is "
                        f"{key.description}") from None


#: The page arguments of every list, described once.
First = Annotated[int, strawberry.argument(description="How many items to return: 1 to the server's maximum page "
                                                       "size (100 unless configured); more is an error, never cut.")]
After = Annotated[str | None, strawberry.argument(description="Start after this cursor (an edge's `cursor` or "
                                                               "`pageInfo.endCursor` of the same list); none: from "
                                                               "the start. A cursor of another list is an error.")]


def page_size(info: GatewayInfo, first: int) -> int:
    """Validate `first` against the configured cap: too large is an error, never silently truncated."""
    cap = info.context.services.max_page_size
    if first < 1 or first > cap:
        raise bad_input(f"`first` must be between 1 and {cap}, got {first}")
    return first


@strawberry.type(description="An item of a list, with the cursor that resumes after it.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="Opaque; pass it as `after` to get the items that follow this one. "
                                               "Valid only for the list that issued it.")
    node: T = strawberry.field(description="The object at this position of the list.")


@strawberry.type(description="One page of a list (Relay cursor connection).")
class Connection(Generic[T]):
    page_info: relay.PageInfo = strawberry.field(description="Whether more items follow (`hasNextPage`), and the "
                                                             "cursor to ask for them with (`endCursor`).")
    edges: list[Edge[T]] = strawberry.field(description="The items of this page, in the list's order.")


def to_connection(page: Slice[R], make: Callable[[R], T]) -> Connection[T]:
    """A Relay connection from one page of source records."""
    edges = [Edge(cursor=c, node=make(r)) for r, c in zip(page.items, page.cursors, strict=True)]
    return Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=page.has_next, has_previous_page=False,
            start_cursor=edges[0].cursor if edges else None, end_cursor=edges[-1].cursor if edges else None,
        ),
    )


def empty_connection() -> Connection[Any]:
    return to_connection(Slice.empty(), lambda r: r)
