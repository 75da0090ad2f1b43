"""Shared GraphQL types: Money, the business enums, connections and input errors."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from decimal import Decimal
from typing import Any, Generic, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.relay import GlobalIDValueError
from strawberry.types import Info

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

# The business enums are the sources' own; strawberry.enum registers them in place.
strawberry.enum(OrderStatus, description="Where an order is in its life.")
strawberry.enum(Segment, description="The CRM's market segment.")
for _enum in (CustomerStatus, PaymentTerms, InteractionKind, PartnerKind, PurchaseOrderStatus, ShipmentStatus):
    strawberry.enum(_enum)


@strawberry.type(description="An exact amount of money. `amount` is a decimal string, never a float.")
class Money:
    amount: Decimal
    currency: str

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


def page_size(info: GatewayInfo, first: int) -> int:
    """Validate `first` against the configured cap: too large is an error, never silently truncated."""
    cap = info.context.services.max_page_size
    if first < 1 or first > cap:
        raise bad_input(f"`first` must be between 1 and {cap}, got {first}")
    return first


@strawberry.type(description="An item of a list, with the cursor that resumes after it.")
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type(description="One page of a list (Relay cursor connection).")
class Connection(Generic[T]):
    page_info: relay.PageInfo
    edges: list[Edge[T]]


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
